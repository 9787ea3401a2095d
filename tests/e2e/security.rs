//! Portrait URLs end to end: lipcast fetches what it is given without becoming an SSRF proxy. Local HTTP
//! servers inside the test's own namespace (on loopback and on the namespace's private address) count every
//! request they get, so a refusal is proven to happen before any connection: private targets are refused
//! unless IMAGE_FETCH_ALLOW names them, a public-looking name that resolves to a private address is refused
//! (an /etc/hosts of the test's own), redirects are re-checked and limited to 3, a stalling server hits the
//! time limit and frees the slot, and oversize bodies, wrong content types and wrong magic bytes are refused.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use lipcast_e2e::{Supervisor, TestEnv, in_namespace, launch, paths};
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(300);
/// Portraits above this many bytes are refused (MAX_BODY_BYTES also bounds fetched images).
const MAX_BYTES: usize = 2_000_000;

/// A tiny HTTP/1.1 server for the test: one thread per connection, every request counted.
struct ImageServer {
    port: u16,
    hits: Arc<AtomicUsize>,
}

fn respond(mut s: TcpStream, path: &str, redirect_to: &str) {
    let face = paths::default_portrait();
    let noface = lipcast_e2e::images::generate("png_flat_256");
    let send = |s: &mut TcpStream, head: String, body: &[u8]| {
        let _ = s.write_all(head.as_bytes());
        let _ = s.write_all(body);
    };
    let ok = |ct: &str, len: usize| {
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: {ct}\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
        )
    };
    if let Some(n) = path.strip_prefix("/r/") {
        let n: u32 = n.parse().unwrap_or(0);
        let next = if n <= 1 {
            "/face.jpg".to_owned()
        } else {
            format!("/r/{}", n - 1)
        };
        send(
            &mut s,
            format!(
                "HTTP/1.1 302 Found\r\nLocation: {next}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            ),
            b"",
        );
        return;
    }
    match path {
        "/face.jpg" => send(&mut s, ok("image/jpeg", face.len()), &face),
        "/octet" => send(&mut s, ok("application/octet-stream", face.len()), &face),
        "/no-type" => send(
            &mut s,
            format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                face.len()
            ),
            &face,
        ),
        "/noface.png" => send(&mut s, ok("image/png", noface.len()), &noface),
        "/page.html" => {
            let page = b"<html><body>not an image</body></html>";
            send(&mut s, ok("text/html; charset=utf-8", page.len()), page);
        }
        "/fake.jpg" => {
            let page = b"<html><body>an image/jpeg that is HTML</body></html>";
            send(&mut s, ok("image/jpeg", page.len()), page);
        }
        "/big" => {
            let body = vec![0xAB; MAX_BYTES + 1_000_000];
            send(&mut s, ok("image/jpeg", body.len()), &body);
        }
        "/big-chunked" => {
            // No length announced: the limit must hold while streaming.
            let _ = s.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nConnection: close\r\n\r\n",
            );
            let chunk = vec![0xCD; 64 * 1024];
            for _ in 0..(MAX_BYTES / chunk.len() + 16) {
                if s.write_all(&chunk).is_err() {
                    return;
                }
            }
        }
        "/to-private" => send(
            &mut s,
            format!(
                "HTTP/1.1 302 Found\r\nLocation: {redirect_to}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            ),
            b"",
        ),
        "/stall" => std::thread::sleep(Duration::from_secs(30)),
        "/drip" => {
            let _ = s.write_all(
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
                    face.len()
                )
                .as_bytes(),
            );
            for b in face.iter().take(60) {
                if s.write_all(&[*b]).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        }
        _ => send(
            &mut s,
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".into(),
            b"",
        ),
    }
}

impl ImageServer {
    /// Serves on `ip` (port chosen by the system); `/to-private` redirects to `redirect_to`.
    fn start(ip: &str, redirect_to: String) -> Self {
        let listener = TcpListener::bind((ip, 0)).unwrap_or_else(|e| panic!("bind {ip}: {e}"));
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let counter = counter.clone();
                let redirect_to = redirect_to.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(match conn.try_clone() {
                        Ok(c) => c,
                        Err(_) => return,
                    });
                    let mut first = String::new();
                    if reader.read_line(&mut first).is_err() {
                        return;
                    }
                    loop {
                        let mut line = String::new();
                        match reader.read_line(&mut line) {
                            Ok(0) | Err(_) => break,
                            Ok(_) if line == "\r\n" || line == "\n" => break,
                            Ok(_) => {}
                        }
                    }
                    counter.fetch_add(1, Ordering::SeqCst);
                    let path = first.split_whitespace().nth(1).unwrap_or("/").to_owned();
                    respond(conn, &path, &redirect_to);
                });
            }
        });
        Self { port, hits }
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

struct Api<'a> {
    sup: &'a Supervisor,
    lk: String,
    n: AtomicUsize,
}

impl Api<'_> {
    /// POST /launch with the portrait at `url`: (status, body, how long it took).
    fn launch(&self, url: &str) -> (u16, Value, Duration) {
        let i = self.n.fetch_add(1, Ordering::SeqCst);
        let mut body = launch::body(
            &self.lk,
            "x",
            &format!("sec{i}"),
            &format!("av{i}"),
            "agent",
        );
        body["image"] = Value::from(url);
        let t = Instant::now();
        let (s, r) = self.sup.post_json("/launch", &body, &[]);
        (s, r, t.elapsed())
    }

    /// A launch that must be refused with `code` and a detail containing `contains`.
    fn refused(&self, url: &str, code: &str, contains: &str) -> Duration {
        let (s, r, took) = self.launch(url);
        println!("refused {url} in {} ms: {r}", took.as_millis());
        assert_eq!(s, 400, "{url}: {r}");
        assert_eq!(r["error"], code, "{url}: {r}");
        let detail = r["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains(contains),
            "{url}: detail {detail:?} lacks {contains:?}"
        );
        took
    }

    /// A launch that must be admitted; stopped at once.
    fn admitted(&self, url: &str) {
        let (s, r, took) = self.launch(url);
        println!("admitted {url} in {} ms: {r}", took.as_millis());
        assert_eq!(s, 200, "{url}: {r}");
        let id = r["task_id"].as_str().unwrap_or_default();
        let (s, stopped) = self.sup.post(&format!("/tasks/{id}/stop"));
        assert_eq!(
            (s, stopped["status"].as_str()),
            (200, Some("cancelled")),
            "{stopped}"
        );
    }
}

/// Bind-mounts a hosts file over /etc/hosts. The namespace's mount table is its own (`ip netns exec`
/// unshares it), so nothing outside the test sees it.
fn hosts_override(env: &TestEnv, lines: &str) {
    let file = env.out_dir.join("hosts");
    std::fs::write(&file, format!("127.0.0.1 localhost\n{lines}\n"))
        .unwrap_or_else(|e| panic!("{e}"));
    let ok = Command::new("mount")
        .arg("--bind")
        .arg(&file)
        .arg("/etc/hosts")
        .status()
        .unwrap_or_else(|e| panic!("mount: {e}"));
    assert!(ok.success(), "bind-mounting a hosts file needs root");
}

#[test]
fn security_image_urls() {
    in_namespace("security_image_urls", LIMIT, image_urls);
}

fn image_urls(env: &TestEnv) {
    let lk = launch::blackhole();
    // 10.77.0.1 is the namespace's private address: a stand-in for an internal service.
    let internal = ImageServer::start(lipcast_e2e::ROOM_IP, String::new());
    let internal_url = format!("http://{}:{}/face.jpg", lipcast_e2e::ROOM_IP, internal.port);
    let local = ImageServer::start("127.0.0.1", internal_url.clone());
    let at = |path: &str| format!("http://127.0.0.1:{}{path}", local.port);
    hosts_override(
        env,
        "10.77.0.1 images.example.com\n127.0.0.1 cdn.example.org",
    );
    let common = [
        ("LIVEKIT_CONNECT_TIMEOUT", "60"),
        ("IMAGE_FETCH_TIMEOUT_SECONDS", "2"),
        ("MAX_SESSIONS", "1"),
        ("MAX_BODY_BYTES", "2000000"),
    ];

    // No allow-list: loopback, the private address and a name resolving to it are all refused, and the
    // servers never see a request.
    {
        let sup = Supervisor::start(&env.out_dir, &common);
        sup.wait_ready(Duration::from_secs(60));
        let api = Api {
            sup: &sup,
            lk: lk.clone(),
            n: AtomicUsize::new(0),
        };
        api.refused(&at("/face.jpg"), "image_fetch_failed", "non-public address");
        api.refused(&internal_url, "image_fetch_failed", "non-public address");
        api.refused(
            &format!("http://images.example.com:{}/face.jpg", internal.port),
            "image_fetch_failed",
            "resolves to 10.77.0.1",
        );
        api.refused(
            &format!("http://cdn.example.org:{}/face.jpg", local.port),
            "image_fetch_failed",
            "resolves to 127.0.0.1",
        );
        api.refused(
            &format!("http://[::ffff:127.0.0.1]:{}/face.jpg", local.port),
            "image_fetch_failed",
            "non-public address",
        );
        api.refused(
            &format!("http://2130706433:{}/face.jpg", local.port),
            "image_fetch_failed",
            "non-public",
        );
        assert_eq!(
            local.hits() + internal.hits(),
            0,
            "a refused URL was fetched"
        );
        let (_, tasks) = sup.get("/tasks");
        assert_eq!(tasks["tasks"].as_array().map(Vec::len), Some(0), "{tasks}");
    }

    // IMAGE_FETCH_ALLOW names loopback only: loopback portraits are fetched (by address and by a name that
    // resolves there), everything else keeps being checked.
    let mut env_allow = common.to_vec();
    env_allow.push(("IMAGE_FETCH_ALLOW", "127.0.0.1"));
    let sup = Supervisor::start(&env.out_dir, &env_allow);
    sup.wait_ready(Duration::from_secs(60));
    let api = Api {
        sup: &sup,
        lk,
        n: AtomicUsize::new(100),
    };
    api.admitted(&at("/face.jpg"));
    assert!(local.hits() >= 1, "the allowed portrait was not fetched");
    api.admitted(&format!("http://cdn.example.org:{}/face.jpg", local.port));
    api.admitted(&at("/octet"));
    api.admitted(&at("/no-type"));
    // Redirects: each hop re-checked, at most 3.
    let before = internal.hits();
    api.refused(&at("/to-private"), "image_fetch_failed", "10.77.0.1");
    assert_eq!(internal.hits(), before, "the redirect target was fetched");
    api.admitted(&at("/r/3"));
    api.refused(&at("/r/4"), "image_fetch_failed", "more than 3");
    // A server that stalls, and one that drips: the time limit answers, and the slot is free afterwards.
    for path in ["/stall", "/drip"] {
        let took = api.refused(&at(path), "image_fetch_failed", "timed out");
        println!(
            "MEASURED portrait server {path}: refused after {} ms (limit 2 s)",
            took.as_millis()
        );
        assert!(
            took >= Duration::from_millis(1_500) && took < Duration::from_secs(6),
            "{path}: answered after {took:?}"
        );
        let (_, health) = sup.get("/health");
        assert_eq!(health["active_sessions"], 0, "{health}");
    }
    api.admitted(&at("/face.jpg"));
    // Size, type and magic.
    api.refused(
        &at("/big"),
        "image_fetch_failed",
        "larger than 2000000 bytes",
    );
    api.refused(
        &at("/big-chunked"),
        "image_fetch_failed",
        "larger than 2000000 bytes",
    );
    api.refused(&at("/page.html"), "image_fetch_failed", "not an image");
    api.refused(&at("/fake.jpg"), "invalid_image", "not JPEG, PNG or WebP");
    api.refused(&at("/noface.png"), "no_face", "No face detected");
    api.refused(&at("/missing.jpg"), "image_fetch_failed", "HTTP 404");
    // A replay names the same portrait URL and gets the live session; another URL (even with the same bytes)
    // is another portrait for that room and avatar: 409 room_busy.
    let replay = |url: &str| {
        let mut body = launch::body(&api.lk, "x", "replay-room", "replay-av", "agent");
        body["image"] = Value::from(url);
        sup.post_json("/launch", &body, &[])
    };
    let (s, first) = replay(&at("/face.jpg"));
    assert_eq!(s, 200, "{first}");
    let (s, again) = replay(&at("/face.jpg"));
    assert_eq!((s, &again["task_id"]), (200, &first["task_id"]), "{again}");
    let (s, busy) = replay(&at("/octet"));
    assert_eq!(
        (s, busy["error"].as_str()),
        (409, Some("room_busy")),
        "{busy}"
    );
    let first_id = first["task_id"].as_str().unwrap_or_default();
    let (s, _) = sup.post(&format!("/tasks/{first_id}/stop"));
    assert_eq!(s, 200);
    let (_, health) = sup.get("/health");
    assert_eq!(health["active_sessions"], 0, "{health}");
    let (_, tasks) = sup.get("/tasks");
    let tasks = tasks["tasks"].as_array().cloned().unwrap_or_default();
    assert_eq!(tasks.len(), 7, "one task per admitted launch: {tasks:?}");
    assert!(
        tasks.iter().all(|t| t["status"] == "cancelled"),
        "{tasks:?}"
    );
    let _ = Command::new("umount").arg("/etc/hosts").status();
}
