//! An error with its causes on one line: `error sending request: client
//! error (Connect): tcp connect error: Connection refused (os error 111)`,
//! where `Display` alone says only "error sending request".

use std::error::Error;

/// `e` and every source below it, joined by `: `.
pub fn describe(e: &(dyn Error + 'static)) -> String {
    with_causes(e.to_string(), e.source())
}

/// `head` followed by `cause` and every source below it, joined by `: `; a
/// cause whose text the line already holds (some errors repeat their
/// source) is left out.
pub fn with_causes(mut line: String, mut cause: Option<&(dyn Error + 'static)>) -> String {
    while let Some(c) = cause {
        let text = c.to_string();
        if !text.is_empty() && !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        cause = c.source();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::describe;

    #[derive(Debug)]
    struct Outer(std::io::Error);
    impl std::fmt::Display for Outer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("error sending request")
        }
    }
    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn the_causes_follow_the_error() {
        let e = Outer(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "connection refused",
        ));
        assert_eq!(describe(&e), "error sending request: connection refused");
        let io = std::io::Error::other("disk full");
        assert_eq!(describe(&io), "disk full");
    }
}
