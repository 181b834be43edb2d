//! `kf operator` as a person starts it: bad flags and a missing cluster are
//! named; with a cluster that cannot be reached it stays up as a follower
//! (health and metrics answer, it does not lead) and stops on SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};

#[test]
fn bad_flags_and_no_cluster_are_named() {
    let dir = tempfile::tempdir().expect("temp dir");
    let kf = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_kf"))
            .args(args)
            .env("KUBECONFIG", dir.path().join("missing"))
            .env("HOME", dir.path())
            .env_remove("KUBERNETES_SERVICE_HOST")
            .output()
            .expect("kf runs")
    };
    let out = kf(&["operator", "--controllers", "train,bogus"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("bogus") && err.contains("tenancy"), "{err}");
    let out = kf(&["operator", "--lease", "nolease"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("NAMESPACE/NAME"));
    let out = kf(&["operator"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("kubeconfig"), "{err}");
}

#[test]
fn an_unreachable_cluster_leaves_a_healthy_follower_that_stops_on_sigterm() {
    let dir = tempfile::tempdir().expect("temp dir");
    let kubeconfig = dir.path().join("config");
    // Port 1 on loopback: nothing listens, every API call fails at once.
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: 'http://127.0.0.1:1'}\n\
         contexts:\n- name: c\n  context: {cluster: c, user: u}\ncurrent-context: c\nusers:\n- name: u\n  user: {token: t}\n",
    )
    .expect("kubeconfig");
    let mut child = Command::new(env!("CARGO_BIN_EXE_kf"))
        .args(["operator", "--metrics-addr", "127.0.0.1:0", "--identity", "test-replica", "--lease-seconds", "3"])
        .env("KUBECONFIG", &kubeconfig)
        .stderr(Stdio::piped())
        .spawn()
        .expect("kf runs");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines().map_while(Result::ok);
    let host =
        lines.by_ref().find_map(|l| l.split("http://").nth(1).map(str::to_owned)).expect("it says where /healthz is");
    std::thread::spawn(move || lines.for_each(drop));
    let get = |path: &str| {
        let mut stream = std::net::TcpStream::connect(&host).expect("connect");
        write!(stream, "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").expect("send");
        let mut reply = String::new();
        stream.read_to_string(&mut reply).expect("reply");
        reply
    };
    assert!(get("/healthz").starts_with("HTTP/1.1 200"));
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let metrics = get("/metrics");
    assert!(metrics.contains("kf_operator_leader{identity=\"test-replica\"} 0"), "{metrics}");
    assert!(metrics.contains("kf_operator_controller{name=\"train\"} 1"), "{metrics}");
    let terminated = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
    assert!(terminated.success());
    let status = child.wait().expect("exits");
    assert!(status.success(), "{status:?}");
}
