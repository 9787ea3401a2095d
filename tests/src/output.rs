//! What a child process prints: every line of its stdout and stderr, kept in order of arrival for the test to
//! read, each also handed to a tap (echo it, watch for a line).

use std::io::{BufRead, BufReader, Read};
use std::process::Child;
use std::sync::{Arc, Mutex};

/// The lines a child printed so far.
pub type Lines = Arc<Mutex<Vec<String>>>;

/// Reads the child's piped stdout and stderr on threads of their own until they close; `tap` sees each line
/// before it is kept.
pub fn capture(child: &mut Child, tap: impl Fn(&str) + Clone + Send + 'static) -> Lines {
    let lines: Lines = Arc::default();
    let outs = [
        child
            .stdout
            .take()
            .map(|o| Box::new(o) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|e| Box::new(e) as Box<dyn Read + Send>),
    ];
    for out in outs.into_iter().flatten() {
        let (lines, tap) = (lines.clone(), tap.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                tap(&line);
                lines.lock().unwrap_or_else(|p| p.into_inner()).push(line);
            }
        });
    }
    lines
}

/// A copy of the lines so far.
pub fn snapshot(lines: &Lines) -> Vec<String> {
    lines.lock().unwrap_or_else(|p| p.into_inner()).clone()
}
