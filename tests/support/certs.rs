//! Test certificates made with openssl: a CA, a server certificate for 127.0.0.1 and client certificates,
//! shared by the TLS, credentials, SMART and robustness tests.

use std::path::Path;
use std::process::{Command, Stdio};

/// Run openssl in `dir`; the test fails when it does.
pub fn openssl(dir: &Path, args: &[&str]) {
    let status = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl is installed");
    assert!(status.success(), "openssl {args:?}");
}

/// A CA, a server certificate for 127.0.0.1 and client certificates with the given common names.
pub fn certificates(dir: &Path, clients: &[&str]) {
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
    let mut names = vec![(
        "server".to_owned(),
        "server.ext".to_owned(),
        "server".to_owned(),
    )];
    for cn in clients {
        let ext = format!("{cn}.ext");
        std::fs::write(dir.join(&ext), format!("subjectAltName=DNS:{cn}.partners.test\nbasicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n")).unwrap();
        names.push(((*cn).to_owned(), ext, (*cn).to_owned()));
    }
    for (name, ext, cn) in names {
        let (key, csr, pem) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
        );
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &csr,
                "-subj",
                &format!("/CN={cn}"),
            ],
        );
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &pem,
                "-days",
                "2",
                "-extfile",
                &ext,
            ],
        );
    }
}
