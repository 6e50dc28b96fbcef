//! Stamps the binary with the git revision it was built from (`faultline --version`).
//! Without git or outside a repository (a source tarball, `cargo install` from a copy) the
//! revision is `unknown`: the build never fails for want of it.

use std::path::PathBuf;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
}

fn main() {
    // A build without the repository (a container build) may be given the revision.
    println!("cargo:rerun-if-env-changed=FAULTLINE_GIT_REV");
    let given = std::env::var("FAULTLINE_GIT_REV")
        .ok()
        .filter(|r| !r.is_empty());
    let rev = given
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=FAULTLINE_GIT_REV={rev}");
    // Rebuild when HEAD moves: HEAD itself (a branch switch) and the ref it points at (a
    // commit). In a worktree the git dir is not `.git`, so ask git where it is.
    if let Some(dir) = git(&["rev-parse", "--git-dir"]).map(PathBuf::from) {
        println!("cargo:rerun-if-changed={}", dir.join("HEAD").display());
        if let Some(reference) = git(&["symbolic-ref", "-q", "HEAD"]) {
            let common = git(&["rev-parse", "--git-common-dir"])
                .map(PathBuf::from)
                .unwrap_or(dir.clone());
            println!(
                "cargo:rerun-if-changed={}",
                common.join(reference).display()
            );
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
}
