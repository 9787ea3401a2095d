//! The committed bad-input corpus (`tests/corpus/requests.jsonl`, format in `tests/corpus/README.md`): loading
//! its cases, filling in their placeholders and generated bodies, and sending them as real HTTP requests.

use std::fmt::Write as _;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use crate::images;

/// Boundary of the multipart bodies the corpus builds.
pub const BOUNDARY: &str = "lipcastcorpus";

/// One hostile request and what the server must answer.
#[derive(Debug, Clone)]
pub struct Case {
    pub id: String,
    pub what: String,
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    /// Send the right API secret (header `api-secret`) unless the case is about authentication.
    pub auth: bool,
    /// `None`: the body's natural type; `Some("none")`: no Content-Type header at all.
    pub content_type: Option<String>,
    pub body: Option<Value>,
    pub status: u16,
    /// Acceptable error codes (one, or a few where decoders may legitimately differ).
    pub errors: Vec<String>,
    pub detail_contains: Option<String>,
}

pub fn path() -> std::path::PathBuf {
    crate::paths::workspace().join("tests/corpus/requests.jsonl")
}

/// Every case of the corpus, in file order.
pub fn load() -> Vec<Case> {
    let text =
        std::fs::read_to_string(path()).unwrap_or_else(|e| panic!("{}: {e}", path().display()));
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, l)| {
            let v: Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("requests.jsonl line {}: {e}", n + 1));
            parse_case(&v).unwrap_or_else(|e| panic!("requests.jsonl line {}: {e}", n + 1))
        })
        .collect()
}

fn parse_case(v: &Value) -> Result<Case, String> {
    let s = |k: &str| v[k].as_str().map(str::to_owned).ok_or(format!("no `{k}`"));
    let expect = &v["expect"];
    let errors = match &expect["error"] {
        Value::String(e) => vec![e.clone()],
        Value::Array(a) => a
            .iter()
            .filter_map(|e| e.as_str().map(str::to_owned))
            .collect(),
        _ => return Err("no expect.error".into()),
    };
    Ok(Case {
        id: s("id")?,
        what: s("what")?,
        method: s("method")?,
        path: s("path")?,
        headers: v["headers"]
            .as_object()
            .map(|h| {
                h.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                    .collect()
            })
            .unwrap_or_default(),
        auth: v["auth"].as_bool().unwrap_or(true),
        content_type: v["content_type"].as_str().map(str::to_owned),
        body: v.get("body").cloned(),
        status: expect["status"]
            .as_u64()
            .and_then(|s| u16::try_from(s).ok())
            .ok_or("no expect.status")?,
        errors,
        detail_contains: expect["detail_contains"].as_str().map(str::to_owned),
    })
}

/// What the placeholders of a case stand for on this run.
pub struct Context {
    /// The LiveKit URL valid launches use (a listener that never answers).
    pub lk: String,
    /// The supervisor's API secret.
    pub secret: String,
}

impl Context {
    /// The avatar's token for `room` (signature irrelevant: the supervisor only reads the claims).
    pub fn token(&self, room: &str) -> String {
        crate::token::mint(
            "corpus-livekit-secret",
            "corpus-avatar",
            room,
            "agent",
            &[("lk.publish_on_behalf", "agent")],
        )
    }

    /// `text` with `{{lk}}`, `{{token}}`, `{{token:ROOM}}`, `{{secret}}`, `{{secret_prefix}}`,
    /// `{{secret_upper}}`, `{{repeat:N:TEXT}}` and `{{image:NAME}}` (base64) filled in.
    pub fn expand(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find("}}") else {
                out.push_str(&rest[start..]);
                return out;
            };
            let key = &after[..end];
            match key.split_once(':') {
                None if key == "lk" => out.push_str(&self.lk),
                None if key == "token" => out.push_str(&self.token("corpus")),
                None if key == "secret" => out.push_str(&self.secret),
                None if key == "secret_prefix" => {
                    out.push_str(&self.secret[..self.secret.len() / 2]);
                }
                None if key == "secret_upper" => out.push_str(&self.secret.to_uppercase()),
                Some(("token", room)) => out.push_str(&self.token(room)),
                Some(("image", name)) => out.push_str(&STANDARD.encode(images::generate(name))),
                Some(("repeat", spec)) => {
                    let (n, unit) = spec
                        .split_once(':')
                        .unwrap_or_else(|| panic!("bad placeholder {key:?}"));
                    let n: usize = n
                        .parse()
                        .unwrap_or_else(|_| panic!("bad placeholder {key:?}"));
                    out.push_str(&unit.repeat(n));
                }
                _ => panic!("unknown placeholder {{{{{key}}}}}"),
            }
            rest = &after[end + 2..];
        }
        out.push_str(rest);
        out
    }

    fn expand_json(&self, v: &Value) -> Value {
        match v {
            Value::String(s) => Value::String(self.expand(s)),
            Value::Array(a) => Value::Array(a.iter().map(|x| self.expand_json(x)).collect()),
            Value::Object(o) => Value::Object(
                o.iter()
                    .map(|(k, x)| (k.clone(), self.expand_json(x)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    /// The body bytes of a case and its natural content type.
    pub fn body(&self, case: &Case) -> (Option<String>, Vec<u8>) {
        let Some(body) = &case.body else {
            return (None, Vec::new());
        };
        if let Some(v) = body.get("json") {
            let bytes = serde_json::to_vec(&self.expand_json(v)).unwrap_or_default();
            return (Some("application/json".into()), bytes);
        }
        if let Some(t) = body["text"].as_str() {
            return (Some("application/json".into()), self.expand(t).into_bytes());
        }
        if let Some(b) = body["base64"].as_str() {
            let bytes = STANDARD
                .decode(b)
                .unwrap_or_else(|e| panic!("{}: base64 body: {e}", case.id));
            return (Some("application/json".into()), bytes);
        }
        if let Some(parts) = body["multipart"].as_array() {
            let boundary = body["boundary"].as_str().unwrap_or(BOUNDARY);
            return (
                Some(format!("multipart/form-data; boundary={boundary}")),
                self.multipart(boundary, parts),
            );
        }
        if let Some(name) = body["gen"].as_str() {
            let n = body["n"].as_u64().unwrap_or(0) as usize;
            return (Some("application/json".into()), self.generated(name, n));
        }
        panic!("{}: unknown body {body}", case.id)
    }

    fn multipart(&self, boundary: &str, parts: &[Value]) -> Vec<u8> {
        let mut out = Vec::new();
        for p in parts {
            out.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
            if let Some(raw) = p["raw_headers"].as_str() {
                out.extend_from_slice(raw.as_bytes());
                out.extend_from_slice(b"\r\n");
            } else {
                let name = p["name"].as_str().unwrap_or_default();
                let mut disposition = format!("Content-Disposition: form-data; name=\"{name}\"");
                if let Some(f) = p["filename"].as_str() {
                    let _ = write!(disposition, "; filename=\"{f}\"");
                }
                out.extend_from_slice(disposition.as_bytes());
                out.extend_from_slice(b"\r\n");
                if let Some(ct) = p["content_type"].as_str() {
                    out.extend_from_slice(format!("Content-Type: {ct}\r\n").as_bytes());
                }
            }
            out.extend_from_slice(b"\r\n");
            if let Some(t) = p["text"].as_str() {
                out.extend_from_slice(self.expand(t).as_bytes());
            } else if let Some(b) = p["base64"].as_str() {
                out.extend(STANDARD.decode(b).unwrap_or_default());
            } else if let Some(h) = p["hex"].as_str() {
                out.extend(
                    (0..h.len() / 2)
                        .filter_map(|i| u8::from_str_radix(&h[2 * i..2 * i + 2], 16).ok()),
                );
            } else if let Some(g) = p["gen"].as_str() {
                out.extend(images::generate(g));
            }
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        out
    }

    fn form_field(out: &mut Vec<u8>, name: &str, value: &[u8]) {
        out.extend_from_slice(
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n")
                .as_bytes(),
        );
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }

    /// Bodies too big or too regular to write out in the manifest.
    fn generated(&self, name: &str, n: usize) -> Vec<u8> {
        let valid = json!({"livekit_url": self.lk, "livekit_token": self.token("corpus"), "room_name": "corpus"});
        match name {
            "json_deep_arrays" => format!("{}{}", "[".repeat(n), "]".repeat(n)).into_bytes(),
            "json_deep_objects" => {
                format!("{}1{}", "{\"a\":".repeat(n), "}".repeat(n)).into_bytes()
            }
            "json_deep_in_field" => {
                let mut s = valid.to_string();
                s.pop();
                format!("{s},\"prompt\":{}{}}}", "[".repeat(n), "]".repeat(n)).into_bytes()
            }
            "json_wide" => {
                let mut s = String::from("{");
                for i in 0..n {
                    let _ = write!(s, "\"k{i}\":{i},");
                }
                s.pop();
                s.push('}');
                s.into_bytes()
            }
            "json_padded" => {
                let mut s = valid.to_string().into_bytes();
                let close = s.pop().unwrap_or(b'}');
                s.resize(n, b' ');
                s.push(close);
                s
            }
            "multipart_many_fields" => {
                let mut out = Vec::new();
                Self::form_field(&mut out, "livekit_url", self.lk.as_bytes());
                Self::form_field(&mut out, "livekit_token", self.token("corpus").as_bytes());
                for i in 0..n {
                    Self::form_field(&mut out, &format!("unknown{i}"), b"x");
                }
                out.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
                out
            }
            "multipart_huge_header" => {
                let mut out = Vec::new();
                out.extend_from_slice(
                    format!(
                        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"room_name\"\r\nX-Padding: {}\r\n\r\ncorpus\r\n--{BOUNDARY}--\r\n",
                        "p".repeat(n)
                    )
                    .as_bytes(),
                );
                out
            }
            "multipart_big_file" => {
                let mut out = Vec::new();
                Self::form_field(&mut out, "livekit_url", self.lk.as_bytes());
                Self::form_field(&mut out, "livekit_token", self.token("corpus").as_bytes());
                Self::form_field(&mut out, "room_name", b"corpus");
                out.extend_from_slice(
                    format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"avatar_image\"; filename=\"big.jpg\"\r\n\r\n").as_bytes(),
                );
                out.extend(std::iter::repeat_n(0xAAu8, n));
                out.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
                out
            }
            other => panic!("no body generator {other:?}"),
        }
    }
}

/// What the server answered.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub text: String,
}

/// Sends `case` to the server at `base` (`http://host:port`). Big bodies go on a connection of their own: the
/// server may answer 413 before reading them and close.
pub fn send(
    client: &reqwest::blocking::Client,
    base: &str,
    case: &Case,
    ctx: &Context,
) -> Result<Answer, String> {
    let (natural, body) = ctx.body(case);
    let own;
    let client = if body.len() > 1024 * 1024 {
        own = reqwest::blocking::Client::builder()
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .map_err(|e| e.to_string())?;
        &own
    } else {
        client
    };
    let method = reqwest::Method::from_bytes(case.method.as_bytes()).map_err(|e| e.to_string())?;
    let url = format!("{base}{}", ctx.expand(&case.path));
    let mut req = client.request(method, url);
    match case.content_type.as_deref() {
        Some("none") => {}
        Some(ct) => req = req.header("content-type", ctx.expand(ct)),
        None => {
            if let (Some(ct), Some(_)) = (natural, &case.body) {
                req = req.header("content-type", ct);
            }
        }
    }
    if case.auth {
        req = req.header("api-secret", &ctx.secret);
    }
    for (k, v) in &case.headers {
        req = req.header(k.as_str(), ctx.expand(v));
    }
    let big = body.len() > 1024 * 1024;
    if case.body.is_some() {
        req = req.body(body);
    }
    // A big body races the server's early answer: it answers 413 from the headers and closes, and the client,
    // still writing, may see the reset before it reads the answer. Such a request is sent again (at most
    // three times in all); the answer, once read, is judged as any other.
    let mut tries = if big { 3 } else { 1 };
    let r = loop {
        let attempt = req
            .try_clone()
            .ok_or("the request cannot be sent again")?
            .send();
        tries -= 1;
        match attempt {
            Ok(r) => break r,
            Err(e) if tries > 0 => {
                println!("corpus: {} sent again after: {e}", case.id);
            }
            Err(e) => return Err(format!("request failed: {e}")),
        }
    };
    let status = r.status().as_u16();
    let content_type = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = r.text().map_err(|e| format!("reading the answer: {e}"))?;
    Ok(Answer {
        status,
        content_type,
        text,
    })
}

/// Why `answer` is not what `case` expects (`None`: it is).
pub fn mismatch(case: &Case, answer: &Answer) -> Option<String> {
    let body: Value = serde_json::from_str(&answer.text).unwrap_or(Value::Null);
    let code = body["error"].as_str().unwrap_or_default();
    let detail = body["detail"].as_str().unwrap_or_default();
    let mut wrong = Vec::new();
    if answer.status != case.status {
        wrong.push(format!("status {} (want {})", answer.status, case.status));
    }
    if !answer.content_type.starts_with("application/json") {
        wrong.push(format!("content type {:?}", answer.content_type));
    }
    if !case.errors.iter().any(|e| e == code) {
        wrong.push(format!("error {code:?} (want {:?})", case.errors));
    }
    if detail.is_empty() {
        wrong.push("no detail".into());
    }
    if let Some(want) = &case.detail_contains
        && !detail.contains(want.as_str())
    {
        wrong.push(format!("detail lacks {want:?}"));
    }
    if wrong.is_empty() {
        return None;
    }
    let shown: String = answer.text.chars().take(300).collect();
    Some(format!(
        "{} ({}): {} -- answer {shown}",
        case.id,
        case.what,
        wrong.join(", ")
    ))
}
