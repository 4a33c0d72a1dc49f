//! TLS on the cluster port, with real sockets on 127.0.0.1 and certificates
//! made at test time with rcgen: a three-node cluster over mutual TLS
//! replicates a write made through a follower; a node whose certificate comes
//! from another CA cannot join (whether it distrusts the cluster or the
//! cluster distrusts it); a certificate not valid for the peer's name is
//! refused unless a fixed server name is configured; plain HTTP and TLS do not
//! talk to each other, and the node stays up; bad PEM files are a
//! `StartError::Tls`; an operator's `admin::call` presents a certificate of
//! the CA, and fails with the reason without one or with a wrong secret.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use session_core::store::testing::live_session;
use session_core::{SessionId, SessionStore};
use session_raft::admin::{self, AdminReply, AdminRequest};
use session_raft::{AdminError, ClusterSecret, ClusterTls, NodeConfig, RaftNode, StartError};

const SECRET: &[u8] = b"tls-test-cluster-secret";
const WAIT: Duration = Duration::from_secs(10);
/// Upper bound on a call that must fail; it fails long before (no sleep
/// decides anything).
const FAIL_BOUND: Duration = Duration::from_secs(20);

/// A certificate authority made for one test.
struct Ca {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::CrlSign,
        ];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A member certificate for `names` (IP addresses or DNS names), usable
    /// as server and client certificate: (certificate PEM, key PEM).
    fn issue(&self, names: &[&str]) -> (String, String) {
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name.push(DnType::CommonName, names[0]);
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// Writes a member's PEM files into `dir` and returns the file-based
/// settings, as the demo app's `--tls-*` flags build them.
fn tls_files(dir: &Path, member: &str, (cert, key): (String, String), ca: &str) -> ClusterTls {
    let (cert_path, key_path, ca_path) = (
        dir.join(format!("{member}.crt")),
        dir.join(format!("{member}.key")),
        dir.join(format!("{member}-ca.pem")),
    );
    std::fs::write(&cert_path, cert).unwrap();
    std::fs::write(&key_path, key).unwrap();
    std::fs::write(&ca_path, ca).unwrap();
    ClusterTls::from_pem_files(cert_path, key_path, ca_path)
}

fn config(id: u64, tls: Option<ClusterTls>) -> NodeConfig {
    let config = NodeConfig::new(id, "127.0.0.1:0".parse().unwrap())
        .with_secret(SECRET)
        .with_ephemeral_cluster(true)
        .with_timing(
            Duration::from_millis(100),
            Duration::from_millis(500),
            Duration::from_millis(900),
        );
    match tls {
        Some(tls) => config.with_tls(tls),
        None => config,
    }
}

fn now() -> u64 {
    session_core::Clock::system().now()
}

/// Node 1 bootstraps alone, nodes 2 and 3 join through it: three voters.
async fn tls_cluster(tls: impl Fn(u64) -> ClusterTls) -> Vec<RaftNode> {
    let first = RaftNode::start(config(1, Some(tls(1))))
        .await
        .expect("node 1");
    first.wait_for_leader(WAIT).await.expect("leader");
    let via = first.cluster_addr().to_string();
    let mut nodes = vec![first];
    for id in [2, 3] {
        let node = RaftNode::start(config(id, Some(tls(id))).with_join(via.clone()))
            .await
            .unwrap_or_else(|e| panic!("node {id} joins over TLS: {e}"));
        nodes.push(node);
    }
    nodes
}

async fn shutdown(nodes: Vec<RaftNode>) {
    for node in nodes {
        node.shutdown_abruptly().await.ok();
    }
}

/// Starts a node that must fail to join through `via`, and returns why.
async fn failed_join(id: u64, tls: Option<ClusterTls>, via: String) -> String {
    let start = RaftNode::start(config(id, tls).with_join(via));
    match tokio::time::timeout(FAIL_BOUND, start).await {
        Ok(Err(e @ StartError::Join { .. })) => e.to_string(),
        Ok(Err(e)) => panic!("expected a join failure, got {e}"),
        Ok(Ok(_)) => panic!("node {id} joined"),
        Err(_) => panic!("the join did not fail fast: it was retried as if transient"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_node_tls_cluster_replicates_a_write_made_through_a_follower() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("cluster CA");
    let nodes = tls_cluster(|id| {
        tls_files(
            dir.path(),
            &format!("node{id}"),
            ca.issue(&["127.0.0.1"]),
            &ca.cert_pem,
        )
    })
    .await;
    let leader = nodes[0].wait_for_leader(WAIT).await.unwrap();
    let status = nodes[0].status();
    assert_eq!(
        status.members.iter().filter(|m| m.voter).count(),
        3,
        "{status:?}"
    );
    let followers: Vec<&RaftNode> = nodes.iter().filter(|n| n.node_id() != leader).collect();

    // Forwarded to the leader and replicated back, all over TLS.
    let id = SessionId::generate(None).unwrap();
    let created = followers[0]
        .store()
        .create(&id, live_session(&[("v", &42u64.to_le_bytes())]))
        .await
        .expect("create through a follower");
    for reader in [followers[1], followers[0]] {
        let record = reader
            .store()
            .load(&id, created.token, now())
            .await
            .expect("load")
            .expect("the session is there");
        assert_eq!(record.data.get("v").unwrap(), &42u64.to_le_bytes().to_vec());
    }
    shutdown(nodes).await;
}

/// Node 1 alone, TLS with a certificate of `ca` for 127.0.0.1, files in `dir`.
async fn first_tls_node(dir: &std::path::Path, ca: &Ca) -> RaftNode {
    let files = tls_files(dir, "node1", ca.issue(&["127.0.0.1"]), &ca.cert_pem);
    RaftNode::start(config(1, Some(files))).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_a_certificate_of_another_ca_cannot_join() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("cluster CA");
    let other = Ca::new("someone else's CA");
    let first = first_tls_node(dir.path(), &ca).await;
    first.wait_for_leader(WAIT).await.unwrap();
    let via = first.cluster_addr().to_string();

    // All from the other CA: this node refuses the cluster's certificate.
    let outsider = tls_files(
        dir.path(),
        "outsider",
        other.issue(&["127.0.0.1"]),
        &other.cert_pem,
    );
    let reason = failed_join(2, Some(outsider), via.clone()).await;
    assert!(reason.contains("TLS"), "{reason}");
    assert!(reason.contains("UnknownIssuer"), "{reason}");

    // Trusts both CAs but holds a certificate of the other one: the cluster
    // refuses its client certificate during the handshake (mutual TLS), so
    // its request is never read.
    let both = format!("{}{}", ca.cert_pem, other.cert_pem);
    let intruder = tls_files(dir.path(), "intruder", other.issue(&["127.0.0.1"]), &both);
    let reason = failed_join(3, Some(intruder), via).await;
    assert!(reason.contains("TLS"), "{reason}");

    // Neither got in.
    let status = first.status();
    assert_eq!(status.members.len(), 1, "{status:?}");
    first.shutdown_abruptly().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_names_are_checked_unless_a_server_name_is_set() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("cluster CA");
    // Certificates for a service name only, no IP SAN: members addressed by
    // IP must be told which name to expect.
    const NAME: &str = "raft.cluster.test";
    let tls = |member: &str| tls_files(dir.path(), member, ca.issue(&[NAME]), &ca.cert_pem);

    let first = RaftNode::start(config(1, Some(tls("node1").with_server_name(NAME))))
        .await
        .unwrap();
    first.wait_for_leader(WAIT).await.unwrap();
    let via = first.cluster_addr().to_string();

    let reason = failed_join(2, Some(tls("node2")), via.clone()).await;
    assert!(reason.contains("not valid for name"), "{reason}");

    let second =
        RaftNode::start(config(2, Some(tls("node2b").with_server_name(NAME))).with_join(via))
            .await
            .expect("joins with the fixed server name");
    let id = SessionId::generate(None).unwrap();
    let created = second
        .store()
        .create(&id, live_session(&[("v", &1u64.to_le_bytes())]))
        .await
        .unwrap();
    assert!(first
        .store()
        .load(&id, created.token, now())
        .await
        .unwrap()
        .is_some());
    second.shutdown_abruptly().await.ok();
    first.shutdown_abruptly().await.ok();
}

/// POSTs with the right secret over plain HTTP.
async fn plain_post(addr: &str) -> Result<u16, String> {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let hex: String = SECRET.iter().map(|b| format!("{b:02x}")).collect();
    let request = http::Request::post(format!("http://{addr}/raft/rpc"))
        .header("authorization", format!("Bearer {hex}"))
        .body(Full::new(Bytes::from_static(&[6])))
        .unwrap();
    match tokio::time::timeout(FAIL_BOUND, client.request(request)).await {
        Err(_) => Err("no answer".into()),
        Ok(Err(e)) => Err(format!("{e:?}")),
        Ok(Ok(response)) => {
            let status = response.status().as_u16();
            let _ = response.into_body().collect().await;
            Ok(status)
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_and_tls_do_not_mix_and_nothing_crashes() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("cluster CA");
    let tls = |member: &str| tls_files(dir.path(), member, ca.issue(&["127.0.0.1"]), &ca.cert_pem);
    let tls_node = RaftNode::start(config(1, Some(tls("node1"))))
        .await
        .unwrap();
    tls_node.wait_for_leader(WAIT).await.unwrap();
    let tls_addr = tls_node.cluster_addr().to_string();

    // A plain request with the right secret gets no HTTP answer at all.
    let refused = plain_post(&tls_addr).await;
    assert!(
        refused.is_err(),
        "plain HTTP got {refused:?} from a TLS port"
    );

    // A TLS client that trusts the CA but has no certificate is refused too.
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(rcgen_der(
            &ca.cert_pem,
        )))
        .unwrap();
    let client = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let anonymous = anonymous_tls_post(client, &tls_addr).await;
    assert!(anonymous.is_err(), "{anonymous:?}");

    // A plain node cannot join the TLS one, a TLS node cannot join a plain
    // one; both fail fast with the reason.
    let reason = failed_join(2, None, tls_addr.clone()).await;
    assert!(reason.contains("not HTTP"), "{reason}");
    let plain_node = RaftNode::start(config(10, None)).await.unwrap();
    plain_node.wait_for_leader(WAIT).await.unwrap();
    let reason = failed_join(
        11,
        Some(tls("node11")),
        plain_node.cluster_addr().to_string(),
    )
    .await;
    assert!(reason.contains("TLS"), "{reason}");

    // Both still serve.
    for node in [&tls_node, &plain_node] {
        let id = SessionId::generate(None).unwrap();
        node.store()
            .create(&id, live_session(&[("v", &3u64.to_le_bytes())]))
            .await
            .unwrap();
    }
    assert_eq!(tls_node.status().members.len(), 1);
    assert_eq!(plain_node.status().members.len(), 1);
    tls_node.shutdown_abruptly().await.ok();
    plain_node.shutdown_abruptly().await.ok();
}

/// DER of a PEM certificate.
fn rcgen_der(pem: &str) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .to_vec()
}

/// A request over TLS without a client certificate: the handshake or the
/// first read fails.
async fn anonymous_tls_post(config: rustls::ClientConfig, addr: &str) -> Result<String, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let exchange = async {
        let mut stream = connector
            .connect(name, tcp)
            .await
            .map_err(|e| e.to_string())?;
        stream
            .write_all(b"POST /raft/rpc HTTP/1.1\r\nhost: x\r\ncontent-length: 1\r\n\r\n\x06")
            .await
            .map_err(|e| e.to_string())?;
        let mut answer = Vec::new();
        stream
            .read_to_end(&mut answer)
            .await
            .map_err(|e| e.to_string())?;
        if answer.is_empty() {
            return Err("closed without an answer".into());
        }
        Ok(String::from_utf8_lossy(&answer).into_owned())
    };
    tokio::time::timeout(FAIL_BOUND, exchange)
        .await
        .map_err(|_| "no answer".to_string())?
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_pem_files_are_a_start_error() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("cluster CA");
    let other = Ca::new("other CA");
    let (cert, key) = ca.issue(&["127.0.0.1"]);
    let (_, other_key) = ca.issue(&["127.0.0.1"]);
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let (cert_file, key_file, ca_file) = (
        write("cert.pem", &cert),
        write("key.pem", &key),
        write("ca.pem", &ca.cert_pem),
    );
    let garbage = write("garbage.pem", "not a pem file\n");
    let cases = [
        (
            ClusterTls::from_pem_files(dir.path().join("missing.pem"), &key_file, &ca_file),
            "missing.pem",
        ),
        (
            ClusterTls::from_pem_files(&garbage, &key_file, &ca_file),
            "no CERTIFICATE",
        ),
        (
            ClusterTls::from_pem_files(&cert_file, &garbage, &ca_file),
            "private key",
        ),
        (
            ClusterTls::from_pem_files(&cert_file, &key_file, &garbage),
            "no CERTIFICATE",
        ),
        // A key of another certificate.
        (
            ClusterTls::from_pem(cert.clone(), other_key, ca.cert_pem.clone()),
            "does not fit",
        ),
        // A certificate the bundle does not vouch for.
        (
            ClusterTls::from_pem(cert.clone(), key.clone(), other.cert_pem.clone()),
            "not accepted by the CA bundle",
        ),
    ];
    for (tls, expected) in cases {
        match RaftNode::start(config(1, Some(tls))).await {
            Err(e @ StartError::Tls(_)) => {
                let text = e.to_string();
                assert!(text.contains(expected), "{text} should mention {expected}");
            }
            Err(e) => panic!("expected StartError::Tls, got {e}"),
            Ok(_) => panic!("started with bad TLS files ({expected})"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_calls_over_tls_present_a_certificate_and_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("cluster CA");
    let node = first_tls_node(dir.path(), &ca).await;
    node.wait_for_leader(WAIT).await.unwrap();
    let via = node.cluster_addr().to_string();
    let operator = tls_files(
        dir.path(),
        "operator",
        ca.issue(&["127.0.0.1"]),
        &ca.cert_pem,
    );
    let secret = ClusterSecret::new(SECRET);
    let call = |secret, tls, request| admin::call(&via, secret, tls, request, FAIL_BOUND);

    match call(Some(&secret), Some(&operator), AdminRequest::Status).await {
        Ok(AdminReply::Status(status)) => {
            assert_eq!(status.leader_id, Some(1), "{status:?}");
            assert_eq!(status.members.len(), 1, "{status:?}");
        }
        other => panic!("status over TLS: {other:?}"),
    }
    // Each failure is immediate and says what it is.
    let plain = call(Some(&secret), None, AdminRequest::Status).await;
    assert!(matches!(plain, Err(AdminError::Tls(_))), "{plain:?}");
    let wrong = ClusterSecret::new(b"not-the-cluster-secret".to_vec());
    let refused = call(Some(&wrong), Some(&operator), AdminRequest::Status).await;
    assert!(
        matches!(&refused, Err(AdminError::SecretRefused { addr }) if *addr == via),
        "{refused:?}"
    );
    let unknown = call(
        Some(&secret),
        Some(&operator),
        AdminRequest::Remove { id: 9 },
    )
    .await;
    match unknown {
        Err(AdminError::Refused { reason }) => assert!(reason.contains("not a member"), "{reason}"),
        other => panic!("removing an unknown node: {other:?}"),
    }
    assert_eq!(node.status().members.len(), 1);
    node.shutdown_abruptly().await.ok();
}
