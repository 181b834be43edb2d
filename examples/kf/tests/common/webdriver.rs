//! A tiny W3C WebDriver client: chromedriver on a free port driving a
//! headless Chromium, over std TcpStream and serde_json. Only what the
//! dashboard tests need: navigate, find by CSS, click, type, read text,
//! wait with a timeout, screenshot. Every wait is bounded.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A browser session, and the chromedriver behind it (killed on drop).
pub struct Browser {
    driver: Child,
    port: u16,
    session: String,
}

/// An executable on PATH (or at one of Debian's paths).
fn which(name: &str, fallbacks: &[&str]) -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join(name));
    on_path.chain(fallbacks.iter().map(PathBuf::from)).find(|p| p.is_file())
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session; `None` when
    /// either is not installed.
    pub fn start() -> Option<Browser> {
        let driver = which("chromedriver", &["/usr/lib/chromium/chromedriver"])?;
        let chromium = which("chromium", &["/usr/lib/chromium/chromium"])
            .or_else(|| which("chromium-browser", &[]))
            .or_else(|| which("google-chrome", &[]))?;
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("addr").port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let mut browser = Browser { driver: child, port, session: String::new() };
        let deadline = Instant::now() + Duration::from_secs(20);
        while browser.raw("GET", "/status", None).map(|v| v["value"]["ready"] != true).unwrap_or(true) {
            assert!(Instant::now() < deadline, "chromedriver did not become ready on port {port}");
            std::thread::sleep(Duration::from_millis(100));
        }
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-dev-shm-usage",
            "--window-size=1280,900",
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {"browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": args}, "goog:loggingPrefs": {"browser": "ALL"}}}});
        let created = browser.raw("POST", "/session", Some(caps)).expect("a new session");
        browser.session = created["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("{created}")).to_owned();
        Some(browser)
    }

    /// One WebDriver call; the reply's JSON (errors are in `value.error`).
    fn raw(&self, method: &str, path: &str, body: Option<Value>) -> std::io::Result<Value> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.port,
            body.len()
        )?;
        // chromedriver keeps connections open whatever the request says, so
        // the reply ends where its Content-Length (or last chunk) says.
        let mut reply = Vec::new();
        let mut buf = [0u8; 65536];
        loop {
            let n = stream.read(&mut buf)?;
            reply.extend_from_slice(&buf[..n]);
            if let Some(i) = reply.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&reply[..i]).to_ascii_lowercase();
                let body = &reply[i + 4..];
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:").and_then(|v| v.trim().parse::<usize>().ok()));
                let complete = match length {
                    Some(length) => body.len() >= length,
                    None if head.contains("transfer-encoding: chunked") => body.ends_with(b"0\r\n\r\n"),
                    None => n == 0,
                };
                if complete || n == 0 {
                    let body = if length.is_none() && head.contains("chunked") { dechunk(body) } else { body.to_vec() };
                    return serde_json::from_slice(&body)
                        .map_err(|e| std::io::Error::other(format!("{e}: {}", String::from_utf8_lossy(&body))));
                }
            } else if n == 0 {
                return Err(std::io::Error::other("the connection closed before a reply"));
            }
        }
    }

    /// A call on this session that must succeed.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let reply = self.raw(method, &format!("/session/{}{path}", self.session), body).map_err(|e| e.to_string())?;
        match reply["value"].get("error") {
            Some(error) => Err(format!("{error}: {}", reply["value"]["message"])),
            None => Ok(reply["value"].clone()),
        }
    }

    /// Opens a URL.
    pub fn goto(&self, url: &str) {
        self.call("POST", "/url", Some(json!({"url": url}))).unwrap_or_else(|e| panic!("navigate to {url}: {e}"));
    }

    /// The elements matching `css`, now.
    pub fn all(&self, css: &str) -> Vec<String> {
        self.call("POST", "/elements", Some(json!({"using": "css selector", "value": css})))
            .ok()
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|e| e[ELEMENT].as_str().map(str::to_owned))
            .collect()
    }

    /// An element's visible text (`Err` if it went stale).
    pub fn text_of(&self, element: &str) -> Result<String, String> {
        self.call("GET", &format!("/element/{element}/text"), None).map(|v| v.as_str().unwrap_or_default().to_owned())
    }

    /// An element's attribute or computed CSS property.
    pub fn css_of(&self, element: &str, property: &str) -> Result<String, String> {
        self.call("GET", &format!("/element/{element}/css/{property}"), None)
            .map(|v| v.as_str().unwrap_or_default().to_owned())
    }

    /// The visible text of every element matching `css`, now.
    pub fn texts(&self, css: &str) -> Vec<String> {
        self.all(css).iter().filter_map(|e| self.text_of(e).ok()).collect()
    }

    /// What the page shows as text.
    pub fn page_text(&self) -> String {
        self.texts("body").join("\n")
    }

    /// Polls `check` every 100 ms until it gives a value or `timeout`
    /// passes; then fails naming `what` and the page's text.
    pub fn wait<T>(&self, what: &str, timeout: Duration, mut check: impl FnMut(&Browser) -> Option<T>) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(found) = check(self) {
                return found;
            }
            if Instant::now() > deadline {
                let url = self.call("GET", "/url", None).unwrap_or_default();
                panic!("waited {timeout:?} for {what} at {url}; the page shows:\n{}", self.page_text());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits for an element matching `css` whose text contains `text`.
    pub fn wait_text(&self, css: &str, text: &str) -> String {
        self.wait(&format!("{css} showing {text:?}"), Duration::from_secs(20), |b| {
            b.all(css).into_iter().find(|e| b.text_of(e).is_ok_and(|t| t.contains(text)))
        })
    }

    /// Clicks the first element matching `css` whose text contains `text`,
    /// retrying while the page re-renders (stale elements).
    pub fn click_text(&self, css: &str, text: &str) {
        self.wait(&format!("a clickable {css} showing {text:?}"), Duration::from_secs(20), |b| {
            let element = b.all(css).into_iter().find(|e| b.text_of(e).is_ok_and(|t| t.contains(text)))?;
            b.call("POST", &format!("/element/{element}/click"), Some(json!({}))).ok()
        });
    }

    /// Clicks the first element matching `css`.
    pub fn click(&self, css: &str) {
        self.wait(&format!("a clickable {css}"), Duration::from_secs(20), |b| {
            let element = b.all(css).into_iter().next()?;
            b.call("POST", &format!("/element/{element}/click"), Some(json!({}))).ok()
        });
    }

    /// Types `text` into the first element matching `css`.
    pub fn type_into(&self, css: &str, text: &str) {
        let element = self.wait(css, Duration::from_secs(20), |b| b.all(css).into_iter().next());
        self.call("POST", &format!("/element/{element}/value"), Some(json!({"text": text})))
            .unwrap_or_else(|e| panic!("typing into {css}: {e}"));
    }

    /// Empties the first input or textarea matching `css`.
    pub fn clear(&self, css: &str) {
        let element = self.wait(css, Duration::from_secs(20), |b| b.all(css).into_iter().next());
        self.call("POST", &format!("/element/{element}/clear"), Some(json!({})))
            .unwrap_or_else(|e| panic!("clearing {css}: {e}"));
    }

    /// The browser console's messages since the last call (chromedriver's
    /// log endpoint): script errors and Content-Security-Policy violations
    /// show up here.
    pub fn console(&self) -> Vec<String> {
        let logs = self.call("POST", "/se/log", Some(json!({"type": "browser"}))).expect("the browser's log");
        logs.as_array()
            .into_iter()
            .flatten()
            .map(|entry| {
                format!("{} {}", entry["level"].as_str().unwrap_or(""), entry["message"].as_str().unwrap_or(""))
            })
            .collect()
    }

    /// Saves a PNG of the window to `path`.
    pub fn screenshot(&self, path: &Path) {
        let png = self.call("GET", "/screenshot", None).expect("a screenshot");
        std::fs::write(path, base64_decode(png.as_str().unwrap_or_default())).expect("write the screenshot");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.raw("DELETE", &format!("/session/{}", self.session), None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
        let size = String::from_utf8_lossy(&rest[..eol]).trim().to_owned();
        let n = usize::from_str_radix(&size, 16).unwrap_or(0);
        let tail = &rest[eol + 2..];
        if n == 0 || tail.len() < n {
            break;
        }
        out.extend_from_slice(&tail[..n]);
        rest = tail[n..].strip_prefix(b"\r\n").unwrap_or(&tail[n..]);
    }
    out
}

fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let sextets: Vec<u8> = text.bytes().filter_map(value).collect();
    sextets
        .chunks(4)
        .flat_map(|c| {
            let n = c.iter().enumerate().fold(0u32, |n, (i, &v)| n | (u32::from(v) << (18 - 6 * i)));
            let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
            bytes.into_iter().take(c.len().saturating_sub(1))
        })
        .collect()
}
