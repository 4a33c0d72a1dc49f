//! Hostile HTTP input against a real server: axum 0.8 over hyper 1 on a TCP
//! port, with `SessionLayer` over a `RaftStore` (a one-node Raft cluster, the
//! same code path as a follower-less leader). Requests are written as raw
//! bytes, so nothing between the test and the server cleans them up.
//!
//! What it proves, each with a defined answer and never a 500 or a crash:
//!
//! - A 64 KiB cookie header, hundreds of cookies, non-UTF-8 bytes in the
//!   cookie or session header, tampered or foreign-key signatures, and
//!   garbage in the session header are all "no session": 200 with a fresh
//!   session, never the client's id.
//! - Duplicate session cookies: the first that verifies wins (a forged one
//!   in front of a valid one does not hide it), and other cookies with
//!   non-ASCII or non-UTF-8 bytes in the same header do not hide it either.
//! - What hyper itself refuses, before the layer sees anything: a header
//!   section larger than its read buffer (about 400 KiB by default) or more
//!   than 100 header lines gets `431 Request Header Fields Too Large`. The
//!   server keeps serving afterwards.
//! - A destroyed session's cookie, replayed, finds nothing: its data never
//!   comes back, and a write gets a fresh session under a new id.
//! - An insert over the layer's size limit reaches the handler as an error
//!   and the client as 413; the session keeps its previous contents.
//! - Session fixation: an attacker-chosen value (a well-formed id unsigned,
//!   signed with another key, or signed with the right key but unknown to
//!   the store, in the cookie or the header) never becomes the session id
//!   after login, and after `cycle_id` the pre-login id no longer loads.
//! - `max_sessions`: a client creating sessions as fast as it can (a bounded
//!   loop, several connections) gets 200 until the limit and 503 with
//!   `Retry-After` after; the cluster never holds more than the limit, and
//!   the sessions that exist keep working.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderName;
use axum::routing::{get, post};
use axum::Router;
use cookie::{Cookie, CookieJar};
use session_core::{
    ConsistencyToken, Key, Session, SessionError, SessionId, SessionLayer, SessionStore,
};
use session_raft::{NodeConfig, RaftNode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const SIZE_LIMIT: u32 = 16 * 1024;

/// A server on loopback and what the tests need to poke at it.
struct Server {
    addr: SocketAddr,
    node: Arc<RaftNode>,
    key: Key,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    async fn start(max_sessions: Option<u64>) -> Server {
        let mut config = NodeConfig::new(1, "127.0.0.1:0".parse().unwrap());
        if let Some(max) = max_sessions {
            config = config.with_max_sessions(max);
        }
        let node = Arc::new(RaftNode::start(config).await.unwrap());
        node.wait_for_leader(Duration::from_secs(10)).await.unwrap();
        let key = Key::generate();
        let layer = SessionLayer::new(node.store(), key.clone())
            .with_secure(false)
            .with_header(HeaderName::from_static("x-session"))
            .with_size_limit(SIZE_LIMIT);
        let app = Router::new()
            .route("/get", get(get_n))
            .route("/incr", post(incr))
            .route("/big", post(big))
            .route("/login", post(login))
            .route("/logout", post(logout))
            .layer(layer);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Server {
            addr,
            node,
            key,
            task,
        }
    }

    /// Sends one raw request; `head` is the header lines after the request
    /// line, each ending in CRLF.
    async fn send(&self, method: &str, path: &str, head: &[u8]) -> Answer {
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nhost: test\r\nconnection: close\r\ncontent-length: 0\r\n"
        )
        .into_bytes();
        request.extend_from_slice(head);
        request.extend_from_slice(b"\r\n");
        let stream = TcpStream::connect(self.addr).await.unwrap();
        let (mut reader, mut writer) = stream.into_split();
        // Read while writing: the server may answer (431) and stop reading
        // before the request is all written.
        let writing = tokio::spawn(async move {
            let _ = writer.write_all(&request).await;
            writer
        });
        let mut raw = Vec::new();
        let _ = reader.read_to_end(&mut raw).await;
        drop(writing.await);
        Answer::parse(&raw)
    }

    /// A request with one `cookie` header holding `cookie` (raw bytes).
    async fn with_cookie(&self, method: &str, path: &str, cookie: &[u8]) -> Answer {
        let mut head = b"cookie: ".to_vec();
        head.extend_from_slice(cookie);
        head.extend_from_slice(b"\r\n");
        self.send(method, path, &head).await
    }

    /// Whether the store still has `id` (an id moved or deleted moments ago
    /// is reported as `Superseded`: not there either).
    async fn exists(&self, id: &SessionId) -> bool {
        let loaded = self
            .node
            .store()
            .load(
                id,
                ConsistencyToken::NONE,
                session_core::Clock::system().now(),
            )
            .await;
        match loaded {
            Ok(record) => record.is_some(),
            Err(session_core::StoreError::Superseded) => false,
            Err(other) => panic!("load failed: {other}"),
        }
    }

    /// A fresh session holding n = 1; returns its cookie pair and id.
    async fn session(&self) -> (String, SessionId) {
        let answer = self.send("POST", "/incr", b"").await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        let cookie = answer.cookie().expect("a new session sets a cookie");
        let id = self.id_of(&cookie).await;
        (cookie, id)
    }

    /// The id behind a cookie, asked of the server (the cookie is signed,
    /// the id inside is readable).
    async fn id_of(&self, cookie: &str) -> SessionId {
        let sealed = Cookie::parse_encoded(cookie.to_owned()).expect("a cookie pair");
        let opened = CookieJar::new()
            .signed(&self.key)
            .verify(sealed)
            .expect("our own signature");
        let text = opened.value().split('~').next().unwrap().to_owned();
        SessionId::parse(&text).unwrap()
    }

    /// The server still answers normally.
    async fn assert_alive(&self) {
        let (cookie, _) = self.session().await;
        let answer = self.with_cookie("GET", "/get", cookie.as_bytes()).await;
        assert_eq!((answer.status, answer.body.as_str()), (200, "1"));
    }

    async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
        Arc::try_unwrap(self.node)
            .expect("no other handle")
            .shutdown()
            .await
            .unwrap();
    }
}

/// A parsed response (status 0: the connection closed without one).
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn parse(raw: &[u8]) -> Answer {
        let text = String::from_utf8_lossy(raw);
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        Answer {
            status,
            headers,
            body: body.to_owned(),
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The `sid=...` pair of the `set-cookie`, if any (and not a removal).
    fn cookie(&self) -> Option<String> {
        let set = self.header("set-cookie")?;
        let pair = set.split(';').next()?.trim();
        (pair != "sid=").then(|| pair.to_owned())
    }
}

async fn get_n(session: Session) -> Result<String, SessionError> {
    Ok(match session.get::<u64>("n").await? {
        Some(n) => n.to_string(),
        None => "none".into(),
    })
}

async fn incr(session: Session) -> Result<String, SessionError> {
    let n = session.get::<u64>("n").await?.unwrap_or(0) + 1;
    session.insert("n", n).await?;
    Ok(n.to_string())
}

/// Tries to store more than the size limit; the error goes back with `?`.
async fn big(session: Session) -> Result<String, SessionError> {
    session
        .insert("big", vec![7u8; 2 * SIZE_LIMIT as usize])
        .await?;
    Ok("stored".into())
}

async fn login(session: Session) -> Result<String, SessionError> {
    session.insert("user", "alice".to_owned()).await?;
    session.cycle_id().await?;
    session.save().await?;
    Ok(session.id().map(|id| id.to_string()).unwrap_or_default())
}

async fn logout(session: Session) -> Result<&'static str, SessionError> {
    session.destroy().await?;
    Ok("bye")
}

/// `sid` cookie with `value` signed by `key`.
fn signed(key: &Key, value: &str) -> String {
    let mut jar = CookieJar::new();
    jar.signed_mut(key)
        .add(Cookie::new("sid", value.to_owned()));
    jar.get("sid").unwrap().encoded().to_string()
}

/// Asserts a fresh session was started: 200, n = 1, and a new id that is not
/// `not`.
async fn assert_fresh(server: &Server, answer: &Answer, not: &[SessionId], what: &str) {
    assert_eq!(answer.status, 200, "{what}: {answer:?}");
    assert_eq!(answer.body, "1", "{what}: not a fresh session");
    let cookie = answer
        .cookie()
        .unwrap_or_else(|| panic!("{what}: no cookie"));
    let id = server.id_of(&cookie).await;
    assert!(!not.contains(&id), "{what}: kept or adopted an old id");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_numerous_cookies_get_defined_answers() {
    let server = Server::start(None).await;
    let (good, id) = server.session().await;

    // 64 KiB of garbage in one cookie: no session, a fresh one.
    let huge = format!("sid={}", "A".repeat(64 * 1024));
    let answer = server.with_cookie("POST", "/incr", huge.as_bytes()).await;
    assert_fresh(&server, &answer, &[id], "64 KiB cookie").await;
    // 64 KiB of other cookies in front of the real one: still found.
    let padded = format!("pad={}; {good}", "B".repeat(64 * 1024));
    let answer = server.with_cookie("POST", "/incr", padded.as_bytes()).await;
    assert_eq!((answer.status, answer.body.as_str()), (200, "2"));

    // 500 cookies in one header, the session's last.
    let many: Vec<String> = (0..500).map(|i| format!("c{i}=v{i}")).collect();
    let header = format!("{}; {good}", many.join("; "));
    let answer = server.with_cookie("POST", "/incr", header.as_bytes()).await;
    assert_eq!((answer.status, answer.body.as_str()), (200, "3"));
    // 300 forged `sid` cookies, then the valid one: the valid one wins.
    let forged: Vec<String> = (0..300)
        .map(|i| signed(&Key::generate(), &format!("{id}~{i}")))
        .collect();
    let header = format!("{}; {good}", forged.join("; "));
    let answer = server.with_cookie("POST", "/incr", header.as_bytes()).await;
    assert_eq!((answer.status, answer.body.as_str()), (200, "4"));

    // hyper refuses a header section over its buffer (~400 KiB) with 431,
    // before the layer runs...
    let giant = format!("sid={}", "A".repeat(512 * 1024));
    let answer = server.with_cookie("GET", "/get", giant.as_bytes()).await;
    assert_eq!(answer.status, 431, "{answer:?}");
    // ...and more than 100 header lines likewise.
    let lines: String = (0..150).map(|i| format!("cookie: c{i}=v\r\n")).collect();
    let answer = server.send("GET", "/get", lines.as_bytes()).await;
    assert_eq!(answer.status, 431, "{answer:?}");
    // 90 cookie lines are fine, and the session among them is found.
    let mut lines: String = (0..90).map(|i| format!("cookie: c{i}=v\r\n")).collect();
    lines.push_str(&format!("cookie: {good}\r\n"));
    let answer = server.send("GET", "/get", lines.as_bytes()).await;
    assert_eq!((answer.status, answer.body.as_str()), (200, "4"));

    server.assert_alive().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_forged_and_duplicate_cookies_are_no_session() {
    let server = Server::start(None).await;
    let (good_a, a) = server.session().await;
    let (good_b, b) = server.session().await;
    server.with_cookie("POST", "/incr", good_b.as_bytes()).await; // b: n = 2

    // Two valid session cookies: the first that verifies is used.
    let answer = server
        .with_cookie("GET", "/get", format!("{good_b}; {good_a}").as_bytes())
        .await;
    assert_eq!((answer.status, answer.body.as_str()), (200, "2"));
    let answer = server
        .with_cookie("GET", "/get", format!("{good_a}; {good_b}").as_bytes())
        .await;
    assert_eq!((answer.status, answer.body.as_str()), (200, "1"));
    // A tampered copy in front does not hide the real one.
    let value = good_a.strip_prefix("sid=").unwrap();
    let mut tampered = value.as_bytes().to_vec();
    tampered[3] = if tampered[3] == b'A' { b'B' } else { b'A' };
    let tampered = format!("sid={}", String::from_utf8(tampered).unwrap());
    let answer = server
        .with_cookie("GET", "/get", format!("{tampered}; {good_b}").as_bytes())
        .await;
    assert_eq!((answer.status, answer.body.as_str()), (200, "2"));

    // Other cookies of the site with non-ASCII or non-UTF-8 bytes do not
    // hide the session's.
    for neighbour in [&b"name=Jos\xc3\xa9"[..], b"x=\xff\xfe\x80"] {
        let line = [neighbour, b"; ", good_a.as_bytes()].concat();
        let answer = server.with_cookie("GET", "/get", &line).await;
        assert_eq!((answer.status, answer.body.as_str()), (200, "1"));
    }

    let bad_values: Vec<(&str, Vec<u8>)> = vec![
        ("tampered signature", tampered.clone().into_bytes()),
        ("unsigned id", format!("sid={a}~1").into_bytes()),
        (
            "signed with another key",
            signed(&Key::generate(), &format!("{a}~1")).into_bytes(),
        ),
        ("non-UTF-8 value", b"sid=\xff\xfe\xfd\x80abc".to_vec()),
        ("empty", b"sid=".to_vec()),
        ("no name", b"=; ;;=;".to_vec()),
        ("percent garbage", b"sid=%%%zz%".to_vec()),
        (
            "right key, malformed id",
            signed(&server.key, "not-an-id~1").into_bytes(),
        ),
        (
            "right key, token garbage",
            signed(&server.key, &format!("{a}~x")).into_bytes(),
        ),
    ];
    for (what, cookie) in bad_values {
        let answer = server.with_cookie("POST", "/incr", &cookie).await;
        assert_fresh(&server, &answer, &[a, b], what).await;
    }
    // Their sessions were not touched.
    let answer = server.with_cookie("GET", "/get", good_a.as_bytes()).await;
    assert_eq!(answer.body, "1");

    // Garbage in the session header: no session either.
    for value in [
        &b"garbage"[..],
        b"\xff\xfe\x80",
        format!("{a}~1").as_bytes(),
        "A".repeat(32 * 1024).as_bytes(),
    ] {
        let mut head = b"x-session: ".to_vec();
        head.extend_from_slice(value);
        head.extend_from_slice(b"\r\n");
        let answer = server.send("POST", "/incr", &head).await;
        assert_eq!((answer.status, answer.body.as_str()), (200, "1"));
        // Header clients get their (new) value back in the header.
        let sealed = answer.header("x-session").expect("new session header");
        let id = server.id_of(&format!("sid={sealed}")).await;
        assert!(id != a && id != b);
    }
    server.assert_alive().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destroyed_session_replayed_stays_dead() {
    let server = Server::start(None).await;
    let (cookie, id) = server.session().await;
    server.with_cookie("POST", "/incr", cookie.as_bytes()).await; // n = 2
    let answer = server
        .with_cookie("POST", "/logout", cookie.as_bytes())
        .await;
    assert_eq!(answer.status, 200);
    let removal = answer.header("set-cookie").unwrap();
    assert!(removal.starts_with("sid=;"), "{removal}");
    assert!(!server.exists(&id).await);

    // Replayed moments after the logout (as a request racing it would be):
    // reads find nothing, and a write is refused (409) without a cookie or
    // a new session, so that a racing request cannot undo the logout's
    // cookie removal. (After the window, about 30 s, a write starts over
    // under a new id, like any unknown cookie.)
    let answer = server.with_cookie("GET", "/get", cookie.as_bytes()).await;
    assert_eq!((answer.status, answer.body.as_str()), (200, "none"));
    assert!(answer.cookie().is_none(), "{answer:?}");
    let before = server.node.status().session_count;
    let answer = server.with_cookie("POST", "/incr", cookie.as_bytes()).await;
    assert_eq!(answer.status, 409, "{answer:?}");
    assert!(answer.cookie().is_none(), "{answer:?}");
    assert_eq!(server.node.status().session_count, before);
    assert!(!server.exists(&id).await, "the destroyed id came back");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_insert_is_413_and_changes_nothing() {
    let server = Server::start(None).await;
    let (cookie, id) = server.session().await;
    let answer = server.with_cookie("POST", "/big", cookie.as_bytes()).await;
    assert_eq!(answer.status, 413, "{answer:?}");
    assert_eq!(answer.body, "session too large");
    let record = server
        .node
        .store()
        .load(
            &id,
            ConsistencyToken::NONE,
            session_core::Clock::system().now(),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.data.keys().collect::<Vec<_>>(), vec!["n"]);
    // Without a session: 413 too, and nothing created.
    let before = server.node.status().session_count;
    let answer = server.send("POST", "/big", b"").await;
    assert_eq!(answer.status, 413);
    assert!(answer.cookie().is_none());
    assert_eq!(server.node.status().session_count, before);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attacker_chosen_ids_never_survive_login() {
    let server = Server::start(None).await;
    let planted = SessionId::generate(None).unwrap();
    // The attacker's own real session, to plant its (validly signed) cookie.
    let (attacker_cookie, attacker_id) = server.session().await;
    let attempts: Vec<(&str, String)> = vec![
        ("unsigned id", format!("sid={planted}~1")),
        ("unsigned id, no token", format!("sid={planted}")),
        (
            "signed with another key",
            signed(&Key::generate(), &format!("{planted}~1")),
        ),
        (
            "right key, id unknown to the store",
            signed(&server.key, &format!("{planted}~1")),
        ),
        ("the attacker's own valid cookie", attacker_cookie.clone()),
    ];
    for (what, cookie) in attempts {
        let answer = server
            .with_cookie("POST", "/login", cookie.as_bytes())
            .await;
        assert_eq!(answer.status, 200, "{what}: {answer:?}");
        let after = SessionId::parse(&answer.body).unwrap();
        assert_ne!(after, planted, "{what}: planted id adopted");
        assert_ne!(after, attacker_id, "{what}: pre-login id kept");
        assert_eq!(server.id_of(&answer.cookie().unwrap()).await, after);
        assert!(server.exists(&after).await);
    }
    // Nothing was ever stored under the planted id...
    assert!(!server.exists(&planted).await);
    // ...and after the rotation the attacker's pre-login id is dead.
    assert!(!server.exists(&attacker_id).await);
    let answer = server
        .with_cookie("GET", "/get", attacker_cookie.as_bytes())
        .await;
    assert_eq!((answer.status, answer.body.as_str()), (200, "none"));
    // Same through the session header.
    let head = format!("x-session: {planted}~1\r\n");
    let answer = server.send("POST", "/login", head.as_bytes()).await;
    assert_eq!(answer.status, 200);
    assert_ne!(SessionId::parse(&answer.body).unwrap(), planted);
    assert!(!server.exists(&planted).await);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_flood_cannot_pass_max_sessions() {
    const MAX: u64 = 25;
    const CLIENTS: usize = 6;
    const PER_CLIENT: usize = 40;
    let server = Arc::new(Server::start(Some(MAX)).await);
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let server = server.clone();
        tasks.push(tokio::spawn(async move {
            let mut answers = Vec::new();
            for _ in 0..PER_CLIENT {
                // No cookie: every request asks for a new session.
                answers.push(server.send("POST", "/incr", b"").await);
            }
            answers
        }));
    }
    let mut created = Vec::new();
    let mut refused = 0;
    for task in tasks {
        for answer in task.await.unwrap() {
            match answer.status {
                200 => created.push(answer.cookie().expect("cookie of a new session")),
                503 => {
                    assert_eq!(answer.header("retry-after"), Some("1"), "{answer:?}");
                    assert!(answer.cookie().is_none(), "refused but got a cookie");
                    refused += 1;
                }
                other => panic!("flood got {other}: {answer:?}"),
            }
        }
        assert!(server.node.status().session_count as u64 <= MAX);
    }
    // Nothing deletes or expires meanwhile, so exactly MAX got in.
    assert_eq!(created.len() as u64, MAX);
    assert_eq!(refused, CLIENTS * PER_CLIENT - MAX as usize);
    assert_eq!(server.node.status().session_count as u64, MAX);
    // The sessions that exist keep working.
    let answer = server
        .with_cookie("POST", "/incr", created[0].as_bytes())
        .await;
    assert_eq!((answer.status, answer.body.as_str()), (200, "2"));
    // A logout makes room for one more.
    server
        .with_cookie("POST", "/logout", created[1].as_bytes())
        .await;
    assert_eq!(server.send("POST", "/incr", b"").await.status, 200);
    assert_eq!(server.send("POST", "/incr", b"").await.status, 503);
    let server = Arc::try_unwrap(server).ok().expect("tasks are done");
    server.stop().await;
}
