//! Mutual TLS on the listener: with `server.tls.client_ca`, a client without a certificate from that CA
//! cannot even complete the handshake; one with it reaches the API. Certificates are made with openssl.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

fn openssl(dir: &Path, args: &[&str]) {
    let status = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl is installed");
    assert!(status.success(), "openssl {args:?}");
}

fn certificates(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=onedoor test CA",
        ],
    );
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("client.ext"),
        "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
    )
    .unwrap();
    for (name, ext) in [("server", "server.ext"), ("client", "client.ext")] {
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
                "-subj",
                &format!("/CN={name}"),
            ],
        );
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &format!("{name}.pem"),
                "-days",
                "2",
                "-extfile",
                ext,
            ],
        );
    }
}

#[tokio::test]
async fn mutual_tls_on_the_listener_admits_only_clients_with_a_certificate() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
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
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .trim()
        .strip_prefix("onedoor listening on ")
        .expect("address printed")
        .to_owned();
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
