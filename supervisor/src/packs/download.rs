//! Downloading a pack archive over HTTP(S) into a `.part` file: size-limited, with a stall timeout, retries
//! with backoff, and resumption with `Range` when the server supports it (a restart from zero when not).
//!
//! The `.part` file survives a restart of the supervisor, so an interrupted download resumes there too. Its
//! content is only trusted after the sha256 check the caller does.

use std::path::Path;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;

/// Attempts in a row that make no progress before the download is given up.
pub const MAX_ATTEMPTS: u32 = 5;
/// Longest pause between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// At most one progress line in the log this often.
const LOG_EVERY: Duration = Duration::from_secs(5);
/// At most one progress update for `/ready` this often.
const STATUS_EVERY: Duration = Duration::from_millis(200);

#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error("the pack archive is larger than MODEL_PACK_MAX_MB ({limit} bytes){}", size.map(|s| format!(": the server announces {s} bytes")).unwrap_or_default())]
    TooLarge { limit: u64, size: Option<u64> },
    #[error("the server answered {status} for {url}")]
    Status { status: u16, url: String },
    #[error("gave up after {attempts} attempts without progress; last error: {last}")]
    GaveUp { attempts: u32, last: String },
    #[error("writing {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// What one attempt ended with.
enum Attempt {
    Done,
    /// Worth another try (a network error, a stall, a 5xx, a short body).
    Retry(String),
}

/// Download progress: bytes in the `.part` file and the full size when the server said it.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub received: u64,
    pub total: Option<u64>,
}

impl std::fmt::Display for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mb = |b: u64| b as f64 / 1_048_576.0;
        match self.total {
            Some(t) if t > 0 => write!(
                f,
                "{:.1} of {:.1} MiB ({:.0}%)",
                mb(self.received),
                mb(t),
                100.0 * self.received as f64 / t as f64
            ),
            _ => write!(f, "{:.1} MiB", mb(self.received)),
        }
    }
}

/// What to fetch and the limits.
#[derive(Debug, Clone)]
pub struct Fetch {
    pub url: url::Url,
    pub max_bytes: u64,
    /// Longest wait for the next bytes of the body (or for the response headers).
    pub stall: Duration,
    /// First pause between attempts (doubling up to 30 s).
    pub backoff: Duration,
}

/// Downloads into `part` (appending to what is there when the server supports ranges). Returns the size.
pub async fn download(
    fetch: &Fetch,
    part: &Path,
    status: &(dyn Fn(Progress) + Send + Sync),
) -> Result<u64, DownloadError> {
    let client = reqwest::Client::builder()
        .connect_timeout(fetch.stall)
        .read_timeout(fetch.stall)
        .user_agent(concat!("lipcast-supervisor/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| DownloadError::GaveUp {
            attempts: 0,
            last: format!("building the HTTP client: {e}"),
        })?;
    let mut failures = 0u32;
    loop {
        let before = file_len(part).await;
        let last = match attempt(&client, fetch, part, status).await? {
            Attempt::Done => return Ok(file_len(part).await),
            Attempt::Retry(why) => why,
        };
        // An attempt that got bytes resets the count: a slow, flaky link still finishes.
        if file_len(part).await > before {
            failures = 0;
        }
        failures += 1;
        if failures >= MAX_ATTEMPTS {
            return Err(DownloadError::GaveUp {
                attempts: failures,
                last,
            });
        }
        let wait = (fetch.backoff * 2u32.saturating_pow(failures - 1)).min(MAX_BACKOFF);
        tracing::warn!(error = %last, retry_in_ms = wait.as_millis() as u64, attempt = failures,
            "model pack download interrupted; retrying");
        tokio::time::sleep(wait).await;
    }
}

async fn file_len(p: &Path) -> u64 {
    tokio::fs::metadata(p).await.map_or(0, |m| m.len())
}

/// `Content-Range: bytes START-END/TOTAL` (TOTAL may be `*`): (START, TOTAL).
fn content_range(resp: &reqwest::Response) -> Option<(u64, Option<u64>)> {
    let v = resp
        .headers()
        .get(reqwest::header::CONTENT_RANGE)?
        .to_str()
        .ok()?;
    let rest = v.strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let start = range.split_once('-')?.0.trim().parse().ok()?;
    Some((start, total.trim().parse().ok()))
}

/// `Content-Range: bytes */TOTAL` of a 416 answer.
fn unsatisfied_total(resp: &reqwest::Response) -> Option<u64> {
    let v = resp
        .headers()
        .get(reqwest::header::CONTENT_RANGE)?
        .to_str()
        .ok()?;
    v.strip_prefix("bytes */")?.trim().parse().ok()
}

async fn attempt(
    client: &reqwest::Client,
    fetch: &Fetch,
    part: &Path,
    status: &(dyn Fn(Progress) + Send + Sync),
) -> Result<Attempt, DownloadError> {
    let io_err = |source| DownloadError::Io {
        path: part.display().to_string(),
        source,
    };
    let mut have = file_len(part).await;
    if have > fetch.max_bytes {
        have = 0;
    }
    let mut req = client.get(fetch.url.clone());
    if have > 0 {
        req = req.header(reqwest::header::RANGE, format!("bytes={have}-"));
    }
    let mut resp = match tokio::time::timeout(fetch.stall, req.send()).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            return Ok(Attempt::Retry(format!(
                "requesting {}: {}",
                redact(&fetch.url),
                e.without_url()
            )));
        }
        Err(_) => {
            return Ok(Attempt::Retry(format!(
                "no answer from {} within {:?}",
                redact(&fetch.url),
                fetch.stall
            )));
        }
    };
    let code = resp.status();
    let total = if code == reqwest::StatusCode::PARTIAL_CONTENT && have > 0 {
        match content_range(&resp) {
            Some((start, total)) if start == have => {
                tracing::info!(from_byte = have, "model pack download resumed");
                total
            }
            _ => {
                // A range we did not ask for: start over rather than guess.
                tokio::fs::remove_file(part).await.map_err(io_err)?;
                return Ok(Attempt::Retry(
                    "the server answered a different range than asked; restarting".into(),
                ));
            }
        }
    } else if code == reqwest::StatusCode::RANGE_NOT_SATISFIABLE && have > 0 {
        if unsatisfied_total(&resp) == Some(have) {
            return Ok(Attempt::Done); // the .part file is already whole
        }
        tokio::fs::remove_file(part).await.map_err(io_err)?;
        return Ok(Attempt::Retry(
            "the server refused the range; restarting from zero".into(),
        ));
    } else if code.is_success() {
        if have > 0 {
            tracing::info!(
                had = have,
                "the server does not resume (no Range support): downloading from zero"
            );
            have = 0;
        }
        resp.content_length()
    } else if code.is_server_error()
        || code == reqwest::StatusCode::REQUEST_TIMEOUT
        || code == reqwest::StatusCode::TOO_MANY_REQUESTS
    {
        return Ok(Attempt::Retry(format!("the server answered {code}")));
    } else {
        return Err(DownloadError::Status {
            status: code.as_u16(),
            url: redact(&fetch.url),
        });
    };
    if let Some(t) = total
        && t > fetch.max_bytes
    {
        return Err(DownloadError::TooLarge {
            limit: fetch.max_bytes,
            size: Some(t),
        });
    }
    let mut file = tokio::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(have == 0)
        .append(have > 0)
        .open(part)
        .await
        .map_err(io_err)?;
    if have == 0 {
        tracing::info!(url = %redact(&fetch.url), size = ?total, "downloading the model pack");
    }
    let started = Instant::now();
    let start_bytes = have;
    let mut last_log = Instant::now();
    let mut last_status = Instant::now();
    let mut received = have;
    status(Progress { received, total });
    let outcome = loop {
        let chunk = match tokio::time::timeout(fetch.stall, resp.chunk()).await {
            Ok(Ok(Some(c))) => c,
            Ok(Ok(None)) => break None,
            Ok(Err(e)) => break Some(format!("reading the body: {}", e.without_url())),
            Err(_) => break Some(format!("no data for {:?} (stalled)", fetch.stall)),
        };
        received += chunk.len() as u64;
        if received > fetch.max_bytes {
            drop(file);
            tokio::fs::remove_file(part).await.map_err(io_err)?;
            return Err(DownloadError::TooLarge {
                limit: fetch.max_bytes,
                size: total,
            });
        }
        file.write_all(&chunk).await.map_err(io_err)?;
        if last_status.elapsed() >= STATUS_EVERY {
            last_status = Instant::now();
            status(Progress { received, total });
        }
        if last_log.elapsed() >= LOG_EVERY {
            last_log = Instant::now();
            let rate =
                (received - start_bytes) as f64 / started.elapsed().as_secs_f64() / 1_048_576.0;
            tracing::info!(
                "model pack download: {} at {rate:.1} MiB/s",
                Progress { received, total }
            );
        }
    };
    file.flush().await.map_err(io_err)?;
    file.sync_all().await.map_err(io_err)?;
    status(Progress { received, total });
    if let Some(why) = outcome {
        return Ok(Attempt::Retry(why));
    }
    if let Some(t) = total
        && received != t
    {
        return Ok(Attempt::Retry(format!(
            "the body ended at byte {received} of {t}"
        )));
    }
    let secs = started.elapsed().as_secs_f64().max(1e-6);
    tracing::info!(
        bytes = received,
        seconds = format!("{secs:.2}"),
        mib_per_s = format!(
            "{:.1}",
            (received - start_bytes) as f64 / secs / 1_048_576.0
        ),
        "model pack downloaded"
    );
    Ok(Attempt::Done)
}

/// The URL without credentials or query (which may carry a token), for the marker.
pub fn redact(url: &url::Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_query(None);
    u.to_string()
}
