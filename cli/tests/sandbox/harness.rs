//! Starts `avocet sandbox` processes and runs `kubectl` against them; every process is killed
//! when its test ends.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;

pub(crate) const TOKEN: &str = "sandbox-token-for-tests";

/// One `avocet sandbox` process and its directory (data, kubeconfig, kubectl's cache).
pub(crate) struct Sandbox {
    pub(crate) dir: TempDir,
    pub(crate) port: u16,
    process: Option<Child>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Sandbox {
    /// Starts a sandbox with a token and a data directory, and waits until it answers.
    pub(crate) fn start() -> Sandbox {
        let mut sandbox =
            Sandbox { dir: tempfile::tempdir().unwrap(), port: free_port(), process: None };
        sandbox.spawn();
        sandbox
    }

    pub(crate) fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    /// Starts (or restarts) the process on the same port and data directory.
    pub(crate) fn spawn(&mut self) {
        let _ = std::fs::remove_file(self.kubeconfig());
        let log = std::fs::File::create(self.dir.path().join("sandbox.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_avocet"))
            .args(["sandbox", "--listen", &format!("127.0.0.1:{}", self.port), "--token", TOKEN])
            .arg("--data-dir")
            .arg(self.dir.path().join("data"))
            .arg("--kubeconfig-out")
            .arg(self.kubeconfig())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.process = Some(child);
        // Up to 20 s, in 20 ms steps.
        let started = (0..1000).any(|_| {
            let up =
                self.kubeconfig().exists() && TcpStream::connect(("127.0.0.1", self.port)).is_ok();
            if !up {
                std::thread::sleep(Duration::from_millis(20));
            }
            up
        });
        assert!(started, "the sandbox did not start; see {}", self.dir.path().display());
    }

    /// Kills the process (SIGKILL: nothing gets to flush on the way out).
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.process.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A kubectl command against this sandbox, with its own cache and home directory.
    pub(crate) fn kubectl_command(&self, kubeconfig: &Path) -> Command {
        let mut cmd = Command::new("kubectl");
        cmd.env("KUBECONFIG", kubeconfig)
            .env("KUBECACHEDIR", self.dir.path().join("kube-cache"))
            .env("HOME", self.dir.path());
        cmd
    }

    /// Runs kubectl with the sandbox's own kubeconfig.
    pub(crate) fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_command(&self.kubeconfig())
            .args(args)
            .output()
            .expect("kubectl is on the PATH (scripts/test.sh installs it)")
    }

    /// Runs kubectl and expects success; returns stdout.
    pub(crate) fn ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs kubectl and expects failure; returns stderr.
    pub(crate) fn fails(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            !out.status.success(),
            "kubectl {args:?} should have failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stderr).unwrap()
    }

    /// `kubectl get … -o json`, parsed.
    pub(crate) fn get_json(&self, args: &[&str]) -> Value {
        let mut all = vec!["get"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["-o", "json"]);
        serde_json::from_str(&self.ok(&all)).unwrap()
    }

    /// Writes a manifest into the test directory and returns its path.
    pub(crate) fn manifest(&self, name: &str, docs: &[Value]) -> String {
        let path = self.dir.path().join(name);
        let list = serde_json::json!({ "apiVersion": "v1", "kind": "List", "items": docs });
        std::fs::write(&path, serde_json::to_string_pretty(&list).unwrap()).unwrap();
        path.to_str().unwrap().to_owned()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether every field of `expected` is in `actual` with the same value (lists item by item).
pub(crate) fn contains(actual: &Value, expected: &Value) -> Result<(), String> {
    fn go(actual: &Value, expected: &Value, path: &str) -> Result<(), String> {
        match (actual, expected) {
            (Value::Object(a), Value::Object(e)) => {
                for (k, ev) in e {
                    let av = a.get(k).ok_or_else(|| format!("{path}.{k} is missing"))?;
                    go(av, ev, &format!("{path}.{k}"))?;
                }
                Ok(())
            }
            (Value::Array(a), Value::Array(e)) if a.len() == e.len() => a
                .iter()
                .zip(e)
                .enumerate()
                .try_for_each(|(i, (av, ev))| go(av, ev, &format!("{path}[{i}]"))),
            (a, e) if a == e => Ok(()),
            (a, e) => Err(format!("{path} is {a}, expected {e}")),
        }
    }
    go(actual, expected, "")
}
