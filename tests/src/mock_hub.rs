//! A mock Hugging Face Hub on loopback: serves `/{repo}/resolve/{revision}/{file}` from local folders
//! with the headers hf-hub relies on (etag, x-repo-commit, content-range), honours byte ranges, and
//! counts the files it served so tests can tell a download from a cache hit.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

pub struct MockHub {
    pub endpoint: String,
    served: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MockHub {
    /// Serves each repository id from its folder.
    pub fn start(repos: HashMap<String, PathBuf>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let endpoint = format!("http://{}", listener.local_addr().expect("address"));
        let served = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (served, stop) = (served.clone(), stop.clone());
            std::thread::spawn(move || {
                // Bounded: a test never needs the server for more than a few minutes.
                let deadline = std::time::Instant::now() + Duration::from_secs(300);
                while !stop.load(Ordering::SeqCst) && std::time::Instant::now() < deadline {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let _ = stream.set_nonblocking(false);
                            handle(stream, &repos, &served);
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            })
        };
        Self {
            endpoint,
            served,
            stop,
            thread: Some(thread),
        }
    }

    /// Number of full or partial file bodies served so far (metadata probes excluded).
    pub fn files_served(&self) -> usize {
        self.served.load(Ordering::SeqCst)
    }
}

impl Drop for MockHub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn handle(mut stream: TcpStream, repos: &HashMap<String, PathBuf>, served: &AtomicUsize) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    });
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut range: Option<(u64, Option<u64>)> = None;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).is_err() || header.trim().is_empty() {
            break;
        }
        if let Some(value) = header.to_ascii_lowercase().strip_prefix("range: bytes=") {
            let (start, end) = value.trim().split_once('-').unwrap_or(("0", ""));
            range = Some((start.parse().unwrap_or(0), end.parse().ok()));
        }
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or("/");
    let file = resolve(path, repos);
    let response = match file.and_then(|f| std::fs::read(f).ok()) {
        Some(body) => {
            let size = body.len() as u64;
            let (start, end) = match range {
                Some((start, end)) => (start.min(size), end.map_or(size, |e| (e + 1).min(size))),
                None => (0, size),
            };
            let part = &body[start as usize..end as usize];
            if part.len() > 1 || size <= 1 {
                served.fetch_add(1, Ordering::SeqCst);
            }
            let mut head = format!(
                "HTTP/1.1 206 Partial Content\r\netag: \"{:016x}\"\r\nx-repo-commit: {}\r\ncontent-range: bytes {}-{}/{}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                fnv(&body),
                "0123456789abcdef0123456789abcdef01234567",
                start,
                end.saturating_sub(1),
                size,
                part.len()
            )
            .into_bytes();
            head.extend_from_slice(part);
            head
        }
        None => {
            b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_vec()
        }
    };
    let _ = stream.write_all(&response);
    let _ = stream.flush();
    let _ = stream.shutdown(std::net::Shutdown::Write);
}

/// `/{owner}/{name}/resolve/{revision}/{file}` to the local file, when the repository is served.
fn resolve(path: &str, repos: &HashMap<String, PathBuf>) -> Option<PathBuf> {
    let (repo, file) = path.trim_start_matches('/').split_once("/resolve/")?;
    let (_, file) = file.split_once('/')?;
    if file.contains("..") {
        return None;
    }
    let candidate = repos.get(repo)?.join(file);
    candidate.is_file().then_some(candidate)
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325u64, |hash, &b| {
        (hash ^ b as u64).wrapping_mul(0x100000001b3)
    })
}
