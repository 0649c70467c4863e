use super::exit;

pub(super) fn run() -> i32 {
    let schema = synup::recipe::model::recipe_json_schema();
    crate::console::out(&format!(
        "{}\n",
        serde_json::to_string_pretty(&schema).unwrap_or_default()
    ));
    exit::OK
}
