//! The `just test` recipe's log handling, with `CARGO_TARGET_DIR` outside the checkout and from
//! another working directory: the log lands in that target directory (created when missing),
//! `just --evaluate test_log` (what `.ci/run` reads) names it, and a failing `cargo test` fails
//! the recipe. `cargo` is replaced by a script (`just --set cargo ...`), so no build runs.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a failed setup should panic where it happens

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use cmkguard_testkit::workspace_root;

/// `just`: on `PATH` (as under `just test`), else the one `.ci/run` installs.
fn just() -> PathBuf {
    let on_path = std::env::var_os("PATH").into_iter().flat_map(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("just"))
            .collect::<Vec<_>>()
    });
    on_path
        .chain([workspace_root().join(".venv-ci/bin/just")])
        .find(|p| p.is_file())
        .expect("`just` is neither on PATH nor in .venv-ci: run the tests with `just test`")
}

fn fake_cargo(dir: &Path, status: i32) -> PathBuf {
    let path = dir.join(format!("cargo-{status}"));
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\necho \"fake cargo $*\"\necho 'test result: ok. 7 passed; 0 failed'\nexit {status}\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn run_recipe(cargo: &Path, target_dir: &Path, cwd: &Path) -> std::process::Output {
    Command::new(just())
        .arg("--justfile")
        .arg(workspace_root().join("justfile"))
        .arg("--set")
        .arg("cargo")
        .arg(cargo)
        .arg("rust-tests")
        .env("CARGO_TARGET_DIR", target_dir)
        .current_dir(cwd)
        .output()
        .unwrap()
}

#[test]
fn the_test_log_follows_cargo_target_dir_from_any_directory() {
    let scratch = tempfile::tempdir().unwrap();
    let target_dir = scratch.path().join("elsewhere/target");
    let cwd = scratch.path().join("somewhere");
    std::fs::create_dir_all(&cwd).unwrap();

    let out = run_recipe(&fake_cargo(scratch.path(), 0), &target_dir, &cwd);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let log = std::fs::read_to_string(target_dir.join("test.log")).unwrap();
    assert!(log.contains("fake cargo test --workspace --quiet"), "{log}");
    assert!(log.contains("test result: ok. 7 passed"), "{log}");

    let evaluated = Command::new(just())
        .arg("--justfile")
        .arg(workspace_root().join("justfile"))
        .args(["--evaluate", "test_log"])
        .env("CARGO_TARGET_DIR", &target_dir)
        .current_dir(&cwd)
        .output()
        .unwrap();
    assert_eq!(
        Path::new(String::from_utf8_lossy(&evaluated.stdout).trim()),
        target_dir.join("test.log")
    );

    // `tee` must not hide a failing `cargo test` (pipefail).
    let failed = run_recipe(&fake_cargo(scratch.path(), 101), &target_dir, &cwd);
    assert!(!failed.status.success());
}
