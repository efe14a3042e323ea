//! The container image, checked without a Docker engine. The tests parse
//! the Dockerfile and rebuild its build context in a temporary folder from
//! its COPY lines and `.dockerignore`. They run its manifest step there, and
//! compare the runtime stage's entry point, health check and user with the
//! binary.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use intezer_dynamic::assemblyline::Manifest;
use serde_json::Value;

/// Version that the tests pass as the `version` build argument.
const TEST_VERSION: &str = "4.6.0.stable7";

// === Dockerfile parsing ===

/// One Dockerfile instruction: its keyword in upper case and the rest of
/// the line, continuation lines joined.
#[derive(Debug, Clone)]
struct Instruction {
    keyword: String,
    arguments: String,
}

/// One `FROM` stage and its instructions.
#[derive(Debug)]
struct Stage {
    image: String,
    name: Option<String>,
    instructions: Vec<Instruction>,
}

impl Stage {
    fn all(&self, keyword: &str) -> Vec<&Instruction> {
        self.instructions
            .iter()
            .filter(|instruction| instruction.keyword == keyword)
            .collect()
    }

    fn last(&self, keyword: &str) -> &Instruction {
        self.all(keyword)
            .into_iter()
            .last()
            .unwrap_or_else(|| panic!("stage {} has no {keyword}", self.image))
    }

    /// Position of the first RUN whose command contains `text`.
    fn run_position(&self, text: &str) -> usize {
        self.instructions
            .iter()
            .position(|i| i.keyword == "RUN" && i.arguments.contains(text))
            .unwrap_or_else(|| panic!("no RUN containing {text:?}"))
    }
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Parses the Dockerfile into stages. Comment lines are dropped, also
/// inside continued instructions, as Docker does.
fn dockerfile() -> Vec<Stage> {
    let text = fs::read_to_string(repo().join("Dockerfile")).expect("Dockerfile is readable");
    let mut logical_lines = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                logical_lines.push(std::mem::take(&mut current));
            }
        }
    }
    assert!(
        current.is_empty(),
        "the Dockerfile ends inside a continued line"
    );

    let mut stages: Vec<Stage> = Vec::new();
    for line in logical_lines {
        let (keyword, arguments) = line.split_once(char::is_whitespace).unwrap_or((&line, ""));
        let instruction = Instruction {
            keyword: keyword.to_ascii_uppercase(),
            arguments: arguments.trim().to_string(),
        };
        if instruction.keyword == "FROM" {
            let words: Vec<&str> = instruction.arguments.split_whitespace().collect();
            let name = match words.as_slice() {
                [_, as_word, name] if as_word.eq_ignore_ascii_case("as") => Some(name.to_string()),
                _ => None,
            };
            stages.push(Stage {
                image: words[0].to_string(),
                name,
                instructions: Vec::new(),
            });
        } else {
            stages
                .last_mut()
                .expect("an instruction before the first FROM")
                .instructions
                .push(instruction);
        }
    }
    stages
}

fn build_stage(stages: &[Stage]) -> &Stage {
    stages
        .iter()
        .find(|stage| stage.name.as_deref() == Some("build"))
        .expect("a stage named build")
}

fn runtime_stage(stages: &[Stage]) -> &Stage {
    stages.last().expect("at least one stage")
}

/// Parses an exec-form (JSON array) argument list into its words.
fn exec_form(arguments: &str) -> Vec<String> {
    serde_json::from_str(arguments)
        .unwrap_or_else(|err| panic!("{arguments:?} is not an exec-form JSON array: {err}"))
}

/// A COPY line: its `--from` stage, its sources and its destination.
struct Copy {
    from: Option<String>,
    sources: Vec<String>,
    destination: String,
}

fn copies(stage: &Stage) -> Vec<Copy> {
    stage
        .all("COPY")
        .into_iter()
        .map(|instruction| {
            let mut from = None;
            let mut paths = Vec::new();
            for word in instruction.arguments.split_whitespace() {
                if let Some(stage) = word.strip_prefix("--from=") {
                    from = Some(stage.to_string());
                } else if !word.starts_with("--") {
                    paths.push(word.to_string());
                }
            }
            let destination = paths.pop().expect("COPY has a destination");
            assert!(!paths.is_empty(), "COPY without a source");
            Copy {
                from,
                sources: paths,
                destination,
            }
        })
        .collect()
}

/// Returns the default of `ARG NAME=default` declared in `stage`.
fn arg_default(stage: &Stage, name: &str) -> Option<String> {
    stage.all("ARG").into_iter().find_map(|instruction| {
        let (arg, default) = instruction
            .arguments
            .split_once('=')
            .unwrap_or((&instruction.arguments, ""));
        (arg.trim() == name).then(|| default.trim().to_string())
    })
}

// === .dockerignore ===

/// Reads the rules of `.dockerignore`: a pattern and whether it is an
/// exception (`!`). The last rule that matches a path or one of its parent
/// folders decides, as in Docker.
fn dockerignore() -> Vec<(Vec<String>, bool)> {
    let text = fs::read_to_string(repo().join(".dockerignore")).expect(".dockerignore is readable");
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (pattern, exception) = match line.strip_prefix('!') {
                Some(rest) => (rest, true),
                None => (line, false),
            };
            let segments = pattern
                .trim_matches('/')
                .split('/')
                .map(str::to_string)
                .collect();
            (segments, exception)
        })
        .collect()
}

/// Checks whether `relative` (a repository path with `/` separators) is
/// left out of the build context.
fn is_ignored(rules: &[(Vec<String>, bool)], relative: &str) -> bool {
    let segments: Vec<&str> = relative.split('/').collect();
    let mut ignored = false;
    for (pattern, exception) in rules {
        let matches = (1..=segments.len()).any(|depth| glob_path(pattern, &segments[..depth]));
        if matches {
            ignored = !exception;
        }
    }
    ignored
}

/// Matches path segments against pattern segments, where `**` stands for
/// any number of segments.
fn glob_path(pattern: &[String], path: &[&str]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((first, rest)) if first == "**" => {
            (0..=path.len()).any(|skip| glob_path(rest, &path[skip..]))
        }
        Some((first, rest)) => match path.split_first() {
            Some((segment, path_rest)) => {
                glob_segment(first.as_bytes(), segment.as_bytes()) && glob_path(rest, path_rest)
            }
            None => false,
        },
    }
}

/// Matches one segment against `*` and `?` wildcards.
fn glob_segment(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|skip| glob_segment(rest, &text[skip..])),
        Some((b'?', rest)) => !text.is_empty() && glob_segment(rest, &text[1..]),
        Some((byte, rest)) => text.first() == Some(byte) && glob_segment(rest, &text[1..]),
    }
}

/// Lists every file under `path` (or `path` itself), relative to the
/// repository.
fn files_under(path: &Path) -> Vec<String> {
    let mut files = Vec::new();
    let mut pending = vec![path.to_path_buf()];
    while let Some(next) = pending.pop() {
        if next.is_dir() {
            for entry in fs::read_dir(&next).unwrap() {
                pending.push(entry.unwrap().path());
            }
        } else {
            let relative = next.strip_prefix(repo()).unwrap();
            files.push(relative.to_string_lossy().replace('\\', "/"));
        }
    }
    files
}

// === The build context, rebuilt ===

/// Copies every build-stage COPY source into a temporary folder laid out
/// as the build stage's WORKDIR, the way Docker would.
fn rebuild_context(stage: &Stage) -> tempfile::TempDir {
    let workdir = tempfile::tempdir().unwrap();
    for copy in copies(stage).into_iter().filter(|copy| copy.from.is_none()) {
        let destination = workdir
            .path()
            .join(copy.destination.trim_start_matches("./"));
        let into_folder = copy.destination.ends_with('/') || copy.sources.len() > 1;
        for source in &copy.sources {
            let source_path = repo().join(source);
            if source_path.is_dir() {
                // A folder's contents go into the destination.
                copy_tree(&source_path, &destination);
            } else {
                let target = if into_folder {
                    destination.join(source_path.file_name().unwrap())
                } else {
                    destination.clone()
                };
                fs::create_dir_all(target.parent().unwrap()).unwrap();
                fs::copy(&source_path, &target).unwrap();
            }
        }
    }
    workdir
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Returns the cargo that runs the tests.
fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string())
}

/// Returns the host's target triple, so cargo needs only the packages this
/// platform builds, which the test build has already downloaded.
fn host_triple() -> String {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string());
    let output = Command::new(rustc).arg("-vV").output().expect("rustc runs");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|line| line.strip_prefix("host: "))
        .expect("rustc -vV names the host")
        .to_string()
}

/// Runs the build stage's manifest RUN command in `workdir` with the
/// `version` build argument set, as Docker exposes it to RUN.
fn run_manifest_step(stage: &Stage, workdir: &Path, version: &str) -> std::process::Output {
    let step = &stage.instructions[stage.run_position("set-service-tag")];
    Command::new("sh")
        .arg("-c")
        .arg(&step.arguments)
        .current_dir(workdir)
        .env("version", version)
        .output()
        .expect("sh runs")
}

// === Tests ===

#[test]
fn copy_sources_exist_and_enter_context() {
    let stages = dockerfile();
    let rules = dockerignore();
    for copy in copies(build_stage(&stages)) {
        assert!(
            copy.from.is_none(),
            "the build stage copies from the context only"
        );
        for source in &copy.sources {
            let path = repo().join(source);
            assert!(
                path.exists(),
                "COPY source {source} is not in the repository"
            );
            for file in files_under(&path) {
                assert!(
                    !is_ignored(&rules, &file),
                    "{file} is copied but .dockerignore leaves it out of the context"
                );
            }
        }
    }
}

#[test]
fn dockerignore_keeps_target_and_git_out() {
    let rules = dockerignore();
    for path in [
        "target/debug/intezer-dynamic",
        ".git/HEAD",
        "tests/packaging.rs",
    ] {
        assert!(
            is_ignored(&rules, path),
            "{path} would enter the build context"
        );
    }
}

#[test]
fn rebuilt_context_holds_every_build_input() {
    let stages = dockerfile();
    let build = build_stage(&stages);
    let context = rebuild_context(build);
    let root = context.path();

    // `cargo fetch --locked` loads every declared target (a missing bench
    // file fails it, as it fails the build) and checks the lock file.
    let fetch = Command::new(cargo())
        .args(["fetch", "--offline", "--locked", "--target", &host_triple()])
        .current_dir(root)
        .output()
        .expect("cargo runs");
    assert!(
        fetch.status.success(),
        "cargo cannot load the copied package: {}",
        String::from_utf8_lossy(&fetch.stderr)
    );

    // The build script, which sets the commit that --version prints.
    if repo().join("build.rs").exists() {
        assert!(root.join("build.rs").is_file(), "build.rs is not copied");
    }

    // Every file the sources embed with include_str! or include_bytes!.
    // The release build leaves out unit-test modules, which this project
    // keeps at the end of each file after `#[cfg(test)]`, so their
    // includes (such as README.md) need not be copied.
    let include = regex::Regex::new(r#"include_(?:str|bytes)!\(\s*"([^"]+)"\s*\)"#).unwrap();
    let mut embedded = 0;
    for source in files_under(&repo().join("src")) {
        if !source.ends_with(".rs") {
            continue;
        }
        let whole = fs::read_to_string(repo().join(&source)).unwrap();
        let text = whole.split("#[cfg(test)]").next().unwrap();
        let folder = root.join(&source).parent().unwrap().to_path_buf();
        for capture in include.captures_iter(text) {
            embedded += 1;
            let target = folder.join(&capture[1]);
            assert!(
                target.is_file(),
                "{source} embeds {}, which the Dockerfile does not copy",
                &capture[1]
            );
        }
    }
    assert!(
        embedded >= 2,
        "expected the manifest and the quota tiers to be embedded"
    );
}

#[test]
fn manifest_step_bakes_version_in() {
    let stages = dockerfile();
    let build = build_stage(&stages);
    assert!(
        arg_default(build, "version").is_some(),
        "the build stage declares no ARG version"
    );
    assert!(
        build.run_position("set-service-tag") < build.run_position("cargo build"),
        "the manifest must get its version before the binary embeds it"
    );
    let context = rebuild_context(build);

    let output = run_manifest_step(build, context.path(), TEST_VERSION);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let text = fs::read_to_string(context.path().join("service_manifest.yml")).unwrap();
    assert!(!text.contains("$SERVICE_TAG"), "a $SERVICE_TAG is left");
    // The tag given to the parser must not matter any more.
    let manifest = Manifest::parse(&text, "9.9.9.dev9").expect("the manifest parses");
    assert_eq!(manifest.raw["version"], TEST_VERSION);
    assert_eq!(manifest.version, "4.6.0.7");
    let image = manifest.raw["docker_config"]["image"].as_str().unwrap();
    assert!(
        image.ends_with(&format!(":{TEST_VERSION}")),
        "image {image} is not tagged {TEST_VERSION}"
    );
}

#[test]
fn tag_script_rejects_unsafe_version() {
    let stages = dockerfile();
    let build = build_stage(&stages);
    let context = rebuild_context(build);
    let manifest = context.path().join("service_manifest.yml");
    let before = fs::read_to_string(&manifest).unwrap();

    for version in ["", "4.6/0", "4.6.0&x", "4.6.0 stable"] {
        let output = run_manifest_step(build, context.path(), version);
        assert_eq!(
            output.status.code(),
            Some(2),
            "version {version:?} was accepted"
        );
        assert_eq!(fs::read_to_string(&manifest).unwrap(), before);
    }
}

#[test]
fn entrypoint_is_the_binary() {
    let stages = dockerfile();
    let runtime = runtime_stage(&stages);
    let binary_name = common::binary()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();

    let copied = copies(runtime)
        .into_iter()
        .find(|copy| copy.from.as_deref() == Some("build"))
        .expect("the runtime stage copies from the build stage");
    assert_eq!(
        copied.sources,
        vec![format!("/build/target/release/{binary_name}")],
        "the copied file is not the release binary"
    );

    let entrypoint = exec_form(&runtime.last("ENTRYPOINT").arguments);
    assert_eq!(entrypoint, vec![copied.destination.clone()]);
    let command = exec_form(&runtime.last("CMD").arguments);
    assert_eq!(command, vec!["serve".to_string()]);
}

#[test]
fn healthcheck_runs_the_subcommand() {
    let stages = dockerfile();
    let runtime = runtime_stage(&stages);
    let entrypoint = exec_form(&runtime.last("ENTRYPOINT").arguments);

    let healthcheck = &runtime.last("HEALTHCHECK").arguments;
    let (_, command) = healthcheck
        .split_once("CMD ")
        .expect("HEALTHCHECK has a CMD");
    let command = exec_form(command.trim());
    assert_eq!(
        command,
        vec![entrypoint[0].clone(), "healthcheck".to_string()]
    );
}

#[test]
fn runtime_user_is_numeric_non_root() {
    let stages = dockerfile();
    let user = &runtime_stage(&stages).last("USER").arguments;
    let uid = user.split(':').next().unwrap();
    let uid: u32 = uid
        .parse()
        .unwrap_or_else(|_| panic!("USER {user} is not numeric, so runAsNonRoot cannot check it"));
    assert_ne!(uid, 0, "the image runs as root");
}

#[test]
fn commit_argument_reaches_build_script() {
    let stages = dockerfile();
    let build = build_stage(&stages);
    assert!(arg_default(build, "commit").is_some(), "no ARG commit");
    let env_position = build
        .instructions
        .iter()
        .position(|i| {
            i.keyword == "ENV" && i.arguments.contains("INTEZER_DYNAMIC_GIT_COMMIT=$commit")
        })
        .expect("ENV INTEZER_DYNAMIC_GIT_COMMIT=$commit");
    assert!(env_position < build.run_position("cargo build"));
}

#[test]
fn stages_share_debian_release() {
    let stages = dockerfile();
    let build_image = &build_stage(&stages).image;
    let runtime_image = &runtime_stage(&stages).image;
    let release = [("bookworm", "debian12"), ("trixie", "debian13")]
        .into_iter()
        .find(|(codename, _)| build_image.ends_with(codename))
        .unwrap_or_else(|| panic!("unknown Debian release in {build_image}"));
    assert!(
        runtime_image.contains(release.1),
        "{build_image} builds against {} but the runtime is {runtime_image}",
        release.0
    );
}

/// Splits a `1.89` or `1.89.0` version into major and minor.
fn major_minor(version: &str) -> (u32, u32) {
    let mut parts = version.split('.').map(|part| part.parse::<u32>().unwrap());
    (parts.next().unwrap(), parts.next().unwrap_or(0))
}

#[test]
fn rust_image_meets_every_rust_version() {
    let stages = dockerfile();
    let image = &build_stage(&stages).image;
    let tag = image
        .strip_prefix("rust:")
        .unwrap_or_else(|| panic!("{image} is not the official Rust image"));
    let image_version = major_minor(tag.split('-').next().unwrap());

    let cargo_toml = fs::read_to_string(repo().join("Cargo.toml")).unwrap();
    let declared = regex::Regex::new(r#"(?m)^rust-version\s*=\s*"([0-9.]+)""#)
        .unwrap()
        .captures(&cargo_toml)
        .expect("Cargo.toml declares rust-version")[1]
        .to_string();
    let declared = major_minor(&declared);
    assert!(
        image_version >= declared,
        "{image} is older than rust-version"
    );

    // Every locked dependency must build with the declared rust-version.
    let output = Command::new(cargo())
        .args(["metadata", "--offline", "--locked", "--format-version", "1"])
        .args(["--filter-platform", &host_triple()])
        .current_dir(repo())
        .output()
        .expect("cargo runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: Value = serde_json::from_slice(&output.stdout).unwrap();
    for package in metadata["packages"].as_array().unwrap() {
        if let Some(required) = package["rust_version"].as_str() {
            assert!(
                major_minor(required) <= declared,
                "{} {} needs Rust {required}, above rust-version",
                package["name"],
                package["version"]
            );
        }
    }
}

#[test]
fn manifest_docker_config_is_final() {
    let manifest = Manifest::embedded("4.6.0.stable7").unwrap();
    let raw = &manifest.raw;
    assert_eq!(raw["privileged"], false);

    let docker = &raw["docker_config"];
    let image = docker["image"].as_str().unwrap();
    assert!(image.starts_with("${REGISTRY}"), "{image}");
    assert!(image.ends_with(":4.6.0.stable7"), "{image}");
    assert!(
        !image.to_ascii_lowercase().contains("assemblyline"),
        "AL's scaler would give {image} a Python liveness probe"
    );
    assert_eq!(docker["allow_internet_access"], true);
    assert!(docker["cpu_cores"].as_f64().unwrap() > 0.0);
    let ram_mb = docker["ram_mb"].as_u64().unwrap();
    assert!(ram_mb < 512, "ram_mb {ram_mb} is the Python service's size");
}
