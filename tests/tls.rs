//! Mutual TLS on the listener: with `server.tls.client_ca`, a client without a certificate from that CA
//! cannot even complete the handshake; one with it reaches the API. Certificates are made with openssl.

mod support;

use std::process::{Command, Stdio};
use support::certs::certificates;

#[tokio::test]
async fn mutual_tls_on_the_listener_admits_only_clients_with_a_certificate() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path(), &["client"]);
    let root = env!("CARGO_MANIFEST_DIR");
    let d = dir.path().display();
    let config = dir.path().join("onedoor.toml");
    std::fs::write(
        &config,
        format!(
            "[gateway]\nmappings = \"{root}/mappings\"\n[server]\nlisten = \"127.0.0.1:0\"\ndatabase_url = \"sqlite://{d}/onedoor.db\"\n\
             [server.tls]\ncert = \"{d}/server.pem\"\nkey = \"{d}/server.key\"\nclient_ca = \"{d}/ca.pem\"\n[consent]\naudit_dir = \"{d}/audit\"\n"
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_onedoor"))
        .args(["serve", "--config", config.to_str().unwrap()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let base = support::listening_address(&mut child);
    assert!(base.starts_with("https://"), "{base}");

    let ca =
        reqwest::Certificate::from_pem(&std::fs::read(dir.path().join("ca.pem")).unwrap()).unwrap();
    let mut identity = std::fs::read(dir.path().join("client.pem")).unwrap();
    identity.extend(std::fs::read(dir.path().join("client.key")).unwrap());
    let with_cert = reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(ca.clone())
        .identity(reqwest::Identity::from_pem(&identity).unwrap())
        .build()
        .unwrap();
    let without_cert = reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(ca)
        .build()
        .unwrap();

    let ok = with_cert
        .get(format!("{base}/healthz"))
        .send()
        .await
        .expect("a client with a certificate gets through");
    assert_eq!(ok.status().as_u16(), 200);
    assert!(
        without_cert
            .get(format!("{base}/healthz"))
            .send()
            .await
            .is_err(),
        "a client without a certificate is refused at the handshake"
    );
    let _ = child.kill();
    let _ = child.wait();
}
