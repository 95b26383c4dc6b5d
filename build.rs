//! Records the git revision the binary is built from, for `gcore_iam_exporter_build_info`.
//! A build outside a git checkout (a source tarball, a Docker context without .git) can pass it
//! in GCORE_IAM_EXPORTER_REVISION; otherwise it is "unknown".

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=GCORE_IAM_EXPORTER_REVISION");
    for path in [".git/HEAD", ".git/refs/heads", ".git/packed-refs"] {
        if std::path::Path::new(path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    let revision = std::env::var("GCORE_IAM_EXPORTER_REVISION")
        .ok()
        .filter(|r| !r.is_empty())
        .or_else(|| {
            let out = Command::new("git").args(["rev-parse", "--short=12", "HEAD"]).output().ok()?;
            out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        })
        .filter(|r| r.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.'))
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=GCORE_IAM_EXPORTER_REVISION={revision}");
}
