//! The install step as a fresh machine runs it: `scripts/install-system-deps.sh` in a private mount
//! namespace where the libraries and tools it checks for are hidden or faked, with a recording
//! stand-in for `apt-get`, so a check that looks at the wrong file fails here and not on a new machine.
//! Needs root (mount namespaces and overlay mounts); `scripts/test.sh` sets
//! `CALLBOT_SKIP_INSTALL_TEST=1` when it is not run as root.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

/// What the machine looks like inside the namespace.
struct Scene {
    /// Hide every libclang a loader could take (`libclang.so*`, `libclang-<N>.so*`).
    hide_libclang: bool,
    /// Put a `libclang-14.so.1` and clang's `stddef.h` in place (libclang-dev's files).
    fake_libclang: bool,
    /// Commands to hide from `PATH` lookups (a stub that is not executable shadows nothing, so
    /// these are removed from the overlaid `/usr/bin`).
    hide_commands: &'static [&'static str],
}

fn skip() -> bool {
    if std::env::var_os("CALLBOT_SKIP_INSTALL_TEST").is_some() {
        eprintln!("CALLBOT_SKIP_INSTALL_TEST is set: the install-step test does not run");
        return true;
    }
    false
}

/// Runs the install script inside the scene and returns what it asked `apt-get` to install.
fn packages_asked_for(scene: &Scene) -> Vec<String> {
    let work = tempfile::tempdir().unwrap();
    let stubs = work.path().join("stubs");
    std::fs::create_dir(&stubs).unwrap();
    let log = work.path().join("apt.log");
    let apt = stubs.join("apt-get");
    std::fs::write(
        &apt,
        format!("#!/bin/sh\necho \"$*\" >> {}\nexit 0\n", log.display()),
    )
    .unwrap();
    make_executable(&apt);
    let script = namespace_script(scene, work.path(), &stubs);
    let out = Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "bash",
            "-euo",
            "pipefail",
            "-c",
        ])
        .arg(script)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("running unshare (util-linux)");
    assert!(
        out.status.success(),
        "the install step failed in the namespace:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let asked = std::fs::read_to_string(&log).unwrap_or_default();
    asked
        .lines()
        .filter_map(|l| l.split_once("install "))
        .flat_map(|(_, pkgs)| {
            pkgs.split_whitespace()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .filter(|p| !p.starts_with('-'))
        .collect()
}

fn make_executable(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// The shell that overlays the library directories (and `/usr/bin` when commands are hidden), edits
/// them, then runs the install step with the `apt-get` stand-in first on `PATH`.
fn namespace_script(scene: &Scene, work: &Path, stubs: &Path) -> String {
    let mut s = format!(
        r#"
work={work}
n=0
overlay() {{
  n=$((n+1)); mkdir -p "$work/up$n" "$work/wk$n"
  mount -t overlay overlay -o "lowerdir=$1,upperdir=$work/up$n,workdir=$work/wk$n" "$1"
}}
multiarch=/usr/lib/$(gcc -print-multiarch)
for d in /usr/lib/llvm-*/lib "$multiarch" /usr/lib /usr/local/lib; do
  [ -d "$d" ] && overlay "$d"
done
# libclang-cpp (a different library) is what the image ships: make sure it is there.
[ -e "$multiarch/libclang-cpp.so.14" ] || : > "$multiarch/libclang-cpp.so.14"
"#,
        work = work.display()
    );
    if scene.hide_libclang {
        s.push_str(
            r#"for d in /usr/lib/llvm-*/lib "$multiarch" /usr/lib /usr/local/lib; do
  rm -f "$d"/libclang.so "$d"/libclang.so.* "$d"/libclang-[0-9]*.so "$d"/libclang-[0-9]*.so.*
done
"#,
        );
    }
    if scene.fake_libclang {
        s.push_str(
            r#": > "$multiarch/libclang-14.so.1"
d=$(ls -d /usr/lib/llvm-*/lib | head -n1)
mkdir -p "$d/clang/14/include" && : > "$d/clang/14/include/stddef.h"
"#,
        );
    }
    if !scene.hide_commands.is_empty() {
        s.push_str("overlay /usr/bin\n");
        for c in scene.hide_commands {
            s.push_str(&format!("rm -f /usr/bin/{c}\n"));
        }
    }
    s.push_str(&format!(
        "PATH={}:/usr/sbin:/usr/bin:/sbin:/bin scripts/install-system-deps.sh --tests\n",
        stubs.display()
    ));
    s
}

#[test]
fn a_machine_with_only_libclang_cpp_gets_libclang_dev() {
    if skip() {
        return;
    }
    let asked = packages_asked_for(&Scene {
        hide_libclang: true,
        fake_libclang: false,
        hide_commands: &[],
    });
    assert!(
        asked.iter().any(|p| p == "libclang-dev"),
        "libclang-cpp is not the libclang bindgen loads, yet libclang-dev was not asked for: {asked:?}"
    );
}

#[test]
fn a_machine_with_libclang_and_its_headers_is_left_alone() {
    if skip() {
        return;
    }
    let asked = packages_asked_for(&Scene {
        hide_libclang: true,
        fake_libclang: true,
        hide_commands: &[],
    });
    assert!(
        !asked.iter().any(|p| p == "libclang-dev"),
        "asked for libclang-dev although it is there: {asked:?}"
    );
}

#[test]
fn the_tools_the_tests_call_by_path_are_asked_for_when_missing() {
    if skip() {
        return;
    }
    let asked = packages_asked_for(&Scene {
        hide_libclang: false,
        fake_libclang: false,
        hide_commands: &[
            "espeak-ng",
            "chromium",
            "chromedriver",
            "php",
            "cmake",
            "readelf",
        ],
    });
    for pkg in [
        "espeak-ng",
        "chromium",
        "chromium-driver",
        "php-cli",
        "cmake",
        "binutils",
    ] {
        assert!(
            asked.iter().any(|p| p == pkg),
            "{pkg} was not asked for: {asked:?}"
        );
    }
}
