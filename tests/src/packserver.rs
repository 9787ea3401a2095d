//! A small HTTP/1.1 file server for model-pack downloads, with the faults a real one has: it can ignore
//! `Range`, omit `Content-Length`, and cut or stall the body of its first answer. It records every request's
//! `Range` header. Stops (and closes its port) on drop.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the first answer does after `n` bytes of the body.
#[derive(Debug, Clone, Copy)]
pub enum Cut {
    /// Closes the connection.
    Drop(usize),
    /// Sends nothing more for this long, then closes.
    Stall(usize, Duration),
}

#[derive(Debug, Clone, Copy)]
pub struct Behaviour {
    /// Honour `Range: bytes=N-` with 206.
    pub ranges: bool,
    /// Send `Content-Length` (else the body ends when the connection closes).
    pub content_length: bool,
    pub first: Option<Cut>,
    /// Send the body at about this many bytes per second (else as fast as the socket takes it).
    pub rate: Option<usize>,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            ranges: true,
            content_length: true,
            first: None,
            rate: None,
        }
    }
}

pub struct PackServer {
    pub port: u16,
    stop: Arc<AtomicBool>,
    /// The `Range` header of each request ("" when none), in order.
    requests: Arc<Mutex<Vec<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl PackServer {
    /// Serves `body` at every path.
    pub fn start(body: Vec<u8>, behaviour: Behaviour) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("binding the pack server: {e}"));
        let port = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("{e}"))
            .port();
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let body = Arc::new(body);
        let thread = {
            let (stop, requests) = (stop.clone(), requests.clone());
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::Acquire) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let (body, requests) = (body.clone(), requests.clone());
                    std::thread::spawn(move || serve(conn, &body, behaviour, &requests));
                }
            })
        };
        PackServer {
            port,
            stop,
            requests,
            thread: Some(thread),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn requests(&self) -> Vec<String> {
        self.requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl Drop for PackServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Wake the accept loop so it sees the flag and the listener closes.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(mut conn: TcpStream, body: &[u8], b: Behaviour, requests: &Mutex<Vec<String>>) {
    let mut range = String::new();
    {
        let mut reader = BufReader::new(&conn);
        let mut line = String::new();
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if line == "\r\n" || line == "\n" {
                break;
            }
            if let Some((k, v)) = line.split_once(':')
                && k.eq_ignore_ascii_case("range")
            {
                range = v.trim().to_owned();
            }
        }
    }
    let index = {
        let mut r = requests.lock().unwrap_or_else(|p| p.into_inner());
        r.push(range.clone());
        r.len() - 1
    };
    let start = range
        .strip_prefix("bytes=")
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|_| b.ranges);
    let mut head = String::new();
    let part = match start {
        Some(s) if s >= body.len() => {
            head.push_str("HTTP/1.1 416 Range Not Satisfiable\r\n");
            head.push_str(&format!(
                "Content-Range: bytes */{}\r\nContent-Length: 0\r\n",
                body.len()
            ));
            &body[..0]
        }
        Some(s) => {
            head.push_str("HTTP/1.1 206 Partial Content\r\n");
            head.push_str(&format!(
                "Content-Range: bytes {s}-{}/{}\r\n",
                body.len() - 1,
                body.len()
            ));
            &body[s..]
        }
        None => {
            head.push_str("HTTP/1.1 200 OK\r\n");
            body
        }
    };
    if b.ranges {
        head.push_str("Accept-Ranges: bytes\r\n");
    }
    if b.content_length {
        head.push_str(&format!("Content-Length: {}\r\n", part.len()));
    }
    head.push_str("Content-Type: application/gzip\r\nConnection: close\r\n\r\n");
    if conn.write_all(head.as_bytes()).is_err() {
        return;
    }
    match (index, b.first) {
        (0, Some(Cut::Drop(n))) => {
            let _ = conn.write_all(&part[..n.min(part.len())]);
            let _ = conn.flush();
        }
        (0, Some(Cut::Stall(n, wait))) => {
            let _ = conn.write_all(&part[..n.min(part.len())]);
            let _ = conn.flush();
            std::thread::sleep(wait);
        }
        _ => match b.rate {
            None => {
                let _ = conn.write_all(part);
            }
            Some(rate) => {
                // Ten slices a second.
                let slice = (rate / 10).max(1);
                for chunk in part.chunks(slice) {
                    if conn.write_all(chunk).is_err() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        },
    }
    let _ = conn.shutdown(std::net::Shutdown::Both);
}
