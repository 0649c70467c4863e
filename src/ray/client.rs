//! A small client for the Ray Jobs REST API (`/api/jobs/`, `/api/packages/`),
//! the API Ray's own job submission client speaks.

use std::time::Duration;

use serde_json::Value as Json;

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum RayError {
    #[error("{request}: {message}")]
    #[diagnostic(
        code(synup::ray::unreachable),
        help("check the dashboard URL (`--ray http://HOST:8265`) and that the cluster is up")
    )]
    Unreachable { request: String, message: String },
    #[error("{request}: HTTP {status}: {detail}")]
    #[diagnostic(code(synup::ray::http))]
    Http {
        request: String,
        status: u16,
        detail: String,
    },
    #[error("cannot start the Ray client: {0}")]
    #[diagnostic(code(synup::ray::setup))]
    Setup(String),
    #[error("{0}")]
    #[diagnostic(code(synup::ray::submit))]
    Submit(String),
}

/// A small client for the Ray Jobs REST API.
pub struct RayClient {
    base: String,
    http: reqwest::Client,
}

impl RayClient {
    pub fn new(dashboard: &str) -> Result<Self, RayError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| RayError::Setup(e.to_string()))?;
        Ok(Self {
            base: dashboard.trim_end_matches('/').to_owned(),
            http,
        })
    }

    fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<reqwest::Body>,
        timeout: Duration,
    ) -> Result<(u16, String), RayError> {
        let url = format!("{}{path}", self.base);
        crate::io_runtime::block_on(async {
            let mut req = self.http.request(method.clone(), &url).timeout(timeout);
            if let Some(b) = body {
                req = req.body(b);
            }
            let resp = req.send().await.map_err(|e| RayError::Unreachable {
                request: format!("{method} {url}"),
                message: crate::error_chain::describe(&e.without_url()),
            })?;
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap_or_default();
            Ok((status, text))
        })
    }

    pub fn json(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Json>,
    ) -> Result<Json, RayError> {
        let (status, text) = self.send(
            method.clone(),
            path,
            body.map(|b| reqwest::Body::from(b.to_string())),
            Duration::from_secs(60),
        )?;
        if !(200..300).contains(&status) {
            let detail: String = text.chars().take(400).collect();
            return Err(RayError::Http {
                request: format!("{method} {}{path}", self.base),
                status,
                detail,
            });
        }
        Ok(serde_json::from_str(&text).unwrap_or(Json::String(text)))
    }

    pub fn job(&self, id: &str) -> Result<Json, RayError> {
        self.json(reqwest::Method::GET, &format!("/api/jobs/{id}"), None)
    }

    pub fn logs(&self, id: &str) -> Result<String, RayError> {
        let j = self.json(reqwest::Method::GET, &format!("/api/jobs/{id}/logs"), None)?;
        Ok(j.get("logs")
            .and_then(Json::as_str)
            .unwrap_or_default()
            .to_owned())
    }

    pub fn stop(&self, id: &str) -> Result<bool, RayError> {
        let j = self.json(reqwest::Method::POST, &format!("/api/jobs/{id}/stop"), None)?;
        Ok(j.get("stopped").and_then(Json::as_bool).unwrap_or(false))
    }

    /// Uploads `zip` as a working_dir package unless the cluster has it;
    /// returns its URI.
    pub fn upload_package(&self, zip: Vec<u8>) -> Result<String, RayError> {
        use sha1::Digest;
        let name = format!("_ray_pkg_{}.zip", hex::encode(sha1::Sha1::digest(&zip)));
        let path = format!("/api/packages/gcs/{name}");
        let (status, _) = self.send(reqwest::Method::GET, &path, None, Duration::from_secs(30))?;
        if status != 200 {
            let (status, text) = self.send(
                reqwest::Method::PUT,
                &path,
                Some(reqwest::Body::from(zip)),
                Duration::from_secs(600),
            )?;
            if status != 200 {
                return Err(RayError::Http {
                    request: "uploading the job package".to_owned(),
                    status,
                    detail: text.chars().take(400).collect(),
                });
            }
        }
        Ok(format!("gcs://{name}"))
    }
}

/// A job synup submitted, as `synup jobs` lists it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct JobRow {
    pub plan_file: String,
    pub shard: String,
    pub status: String,
    pub id: String,
}

impl RayClient {
    /// The cluster's jobs that synup submitted, sorted by plan file and shard.
    pub fn synup_jobs(&self) -> Result<Vec<JobRow>, RayError> {
        let all = self.json(reqwest::Method::GET, "/api/jobs/", None)?;
        let text = |j: &Json, k: &str| {
            j.get(k)
                .and_then(Json::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let mut rows: Vec<JobRow> = all
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|j| {
                let meta = j.get("metadata")?;
                Some(JobRow {
                    plan_file: text(meta, "synup_plan_file"),
                    shard: meta.get("synup_shard")?.as_str()?.to_owned(),
                    status: text(j, "status"),
                    id: text(j, "submission_id"),
                })
            })
            .collect();
        rows.sort();
        Ok(rows)
    }
}

/// A job as Ray describes it, without the environment (it holds the token).
pub fn redact(mut j: Json) -> Json {
    if let Some(env) = j
        .pointer_mut("/runtime_env/env_vars")
        .and_then(Json::as_object_mut)
    {
        for v in env.values_mut() {
            *v = Json::String("***".into());
        }
    }
    j
}
