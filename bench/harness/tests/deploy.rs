//! The deployment files against the binaries: `docker-compose.yml` is well-formed, every
//! service is built or pulled, long-running ones have health checks and volumes, one-shot
//! jobs are awaited, every `${VAR}` has a default, and every environment variable the file,
//! the Dockerfile or the systemd environment files set is one the binaries read — taken
//! from their clap definitions — with values their configuration accepts. The chain-init
//! job's script runs against a real regtest litecoind. There is no Docker daemon in CI, so
//! this is what keeps the files honest.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use clap::CommandFactory;
use serde::Deserialize;
use serde::de::IgnoredAny;

/// The parts of a compose file this repository uses; anything else is a mistake.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Compose {
    name: String,
    services: BTreeMap<String, Service>,
    volumes: BTreeMap<String, IgnoredAny>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Service {
    image: Option<String>,
    build: Option<Build>,
    entrypoint: Option<Vec<String>>,
    command: Option<Vec<String>>,
    #[serde(default)]
    environment: BTreeMap<String, String>,
    #[serde(default)]
    volumes: Vec<String>,
    #[serde(default)]
    ports: Vec<String>,
    healthcheck: Option<Healthcheck>,
    #[serde(default)]
    depends_on: BTreeMap<String, Dependency>,
    stop_grace_period: Option<String>,
    restart: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Build {
    context: String,
    target: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Healthcheck {
    test: Vec<String>,
    interval: String,
    timeout: String,
    retries: u32,
    start_period: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Dependency {
    condition: String,
}

fn repo_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(name)
}

fn compose_text() -> String {
    std::fs::read_to_string(repo_file("docker-compose.yml")).unwrap()
}

fn compose() -> Compose {
    serde_saphyr::from_str(&compose_text()).expect("docker-compose.yml is well-formed")
}

/// The environment variables a command reads, from its clap definition.
fn env_vars(command: clap::Command) -> BTreeSet<String> {
    command
        .get_arguments()
        .filter_map(|arg| arg.get_env())
        .map(|name| name.to_string_lossy().into_owned())
        .collect()
}

fn server_vars() -> BTreeSet<String> {
    env_vars(rot_server::config::Args::command())
}

fn proxy_vars() -> BTreeSet<String> {
    env_vars(rot_proxy::cli::Cli::command())
}

/// `value` as compose resolves it with nothing set: each `${NAME:-default}` becomes its
/// default and `$$` a `$`. Panics on a `${NAME}` without default.
fn with_defaults(value: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        if let Some(after) = rest.strip_prefix("$$") {
            out.push('$');
            rest = after;
        } else if let Some(after) = rest.strip_prefix("${") {
            let end = after.find('}').expect("closed ${...}");
            let (name, default) = after[..end]
                .split_once(":-")
                .unwrap_or_else(|| panic!("${{{}}} has no default", &after[..end]));
            assert!(
                !name.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'),
                "bad variable name {name:?}"
            );
            out.push_str(default);
            rest = &after[end + 1..];
        } else {
            panic!("a bare $ in {value:?}: write $$ or ${{NAME:-default}}");
        }
    }
    out.push_str(rest);
    out
}

/// Which binary a service runs: the first word of its command, when it is one of ours.
fn binary(service: &Service) -> Option<&str> {
    let first = service.command.as_ref()?.first()?;
    service.entrypoint.is_none().then_some(first.as_str())
}

#[test]
fn every_service_is_built_or_pulled_checked_and_keeps_its_data() {
    let compose = compose();
    assert!(!with_defaults(&compose.name).is_empty());
    let mut awaited = BTreeSet::new();
    for (name, service) in &compose.services {
        assert!(
            service.image.is_some() || service.build.is_some(),
            "{name}: needs image or build"
        );
        if let Some(build) = &service.build {
            assert_eq!(build.context, ".", "{name}: builds from the repository");
            assert!(
                ["rot", "litecoind"].contains(&build.target.as_str()),
                "{name}: unknown Dockerfile target {}",
                build.target
            );
        }
        for (dependency, how) in &service.depends_on {
            assert!(
                compose.services.contains_key(dependency),
                "{name}: depends on unknown {dependency}"
            );
            assert!(
                ["service_healthy", "service_completed_successfully"]
                    .contains(&how.condition.as_str()),
                "{name}: waits for {dependency} by {}",
                how.condition
            );
            if how.condition == "service_completed_successfully" {
                awaited.insert(dependency.clone());
            }
        }
        for volume in &service.volumes {
            let source = volume.split(':').next().unwrap();
            assert!(
                compose.volumes.contains_key(source),
                "{name}: volume {source} is not a named volume"
            );
        }
        for port in &service.ports {
            assert_eq!(with_defaults(port).split(':').count(), 3, "{name}: {port}");
        }
        if service.restart == "no" {
            continue;
        }
        assert_eq!(service.restart, "unless-stopped", "{name}");
        let check = service
            .healthcheck
            .as_ref()
            .unwrap_or_else(|| panic!("{name}: a long-running service needs a health check"));
        assert_eq!(
            check.test.first().map(String::as_str),
            Some("CMD"),
            "{name}"
        );
        assert!(check.retries > 0 && !check.interval.is_empty() && !check.timeout.is_empty());
        assert!(check.start_period.as_deref().is_none_or(|p| !p.is_empty()));
        assert!(
            service
                .stop_grace_period
                .as_deref()
                .is_none_or(|p| p.ends_with('s')),
            "{name}: stop_grace_period in seconds"
        );
        assert!(
            !service.volumes.is_empty(),
            "{name}: a long-running service keeps its data in a volume"
        );
    }
    for (name, service) in &compose.services {
        if service.restart == "no" {
            assert!(
                awaited.contains(name),
                "{name}: a one-shot job nothing waits for"
            );
        }
    }
    let used: BTreeSet<&str> = compose
        .services
        .values()
        .flat_map(|s| s.volumes.iter().map(|v| v.split(':').next().unwrap()))
        .collect();
    for volume in compose.volumes.keys() {
        assert!(used.contains(volume.as_str()), "volume {volume} is unused");
    }
}

#[test]
fn the_ring_has_a_node_three_servers_and_two_proxies_with_their_health_checks() {
    let compose = compose();
    let runs = |binary_name: &str| {
        compose
            .services
            .iter()
            .filter(|(_, s)| binary(s) == Some(binary_name))
            .map(|(name, s)| (name.clone(), s))
            .collect::<Vec<_>>()
    };
    let servers = runs("rot-server");
    let proxies = runs("rot-proxy");
    assert_eq!(servers.len(), 3);
    assert_eq!(proxies.len(), 2);
    for (list, path) in [(&servers, "/rot/v1/info"), (&proxies, "/v1/coins")] {
        for (name, service) in list {
            let test = service.healthcheck.as_ref().unwrap().test.join(" ");
            assert!(
                test.contains(path),
                "{name}: health check {test} should ask {path}"
            );
        }
    }
    assert!(
        compose.services.values().any(|s| s
            .build
            .as_ref()
            .is_some_and(|b| b.target == "litecoind")
            && s.restart != "no"),
        "a litecoind service"
    );
}

#[test]
fn every_variable_has_a_default() {
    for line in compose_text().lines() {
        if !line.trim_start().starts_with('#') {
            with_defaults(line);
        }
    }
}

#[test]
fn every_environment_variable_set_is_read_by_the_binary() {
    let compose = compose();
    let (server_vars, proxy_vars) = (server_vars(), proxy_vars());
    for required in [
        "ROT_COIN_TIKKER",
        "CORE_RPC_HOST",
        "ROT_LOG_FORMAT",
        "RUST_LOG",
    ] {
        assert!(
            server_vars.contains(required),
            "rot-server reads {required}"
        );
    }
    for required in ["ROT_PROXY_COINS", "ROT_LOG_FORMAT", "RUST_LOG"] {
        assert!(proxy_vars.contains(required), "rot-proxy reads {required}");
    }
    for (name, service) in &compose.services {
        if service.environment.is_empty() {
            continue;
        }
        let settings: BTreeMap<String, String> = service
            .environment
            .iter()
            .map(|(key, value)| (key.clone(), with_defaults(value)))
            .collect();
        match binary(service) {
            Some("rot-server") => {
                for key in settings.keys() {
                    assert!(
                        server_vars.contains(key),
                        "{name}: rot-server does not read {key}"
                    );
                }
                rot_server::config::Config::from_map(&settings)
                    .unwrap_or_else(|e| panic!("{name}: rot-server refuses its defaults: {e}"));
            }
            Some("rot-proxy") => {
                for key in settings.keys() {
                    assert!(
                        proxy_vars.contains(key),
                        "{name}: rot-proxy does not read {key}"
                    );
                }
                rot_proxy::config::Config::from_map(&settings)
                    .unwrap_or_else(|e| panic!("{name}: rot-proxy refuses its defaults: {e}"));
            }
            other => panic!("{name}: sets an environment for {other:?}, which reads none"),
        }
    }
}

#[test]
fn the_dockerfile_sets_only_variables_the_services_read() {
    let dockerfile = std::fs::read_to_string(repo_file("Dockerfile")).unwrap();
    let read: BTreeSet<String> = server_vars().union(&proxy_vars()).cloned().collect();
    let joined = dockerfile.replace("\\\n", " ");
    let mut set = Vec::new();
    for line in joined.lines().filter(|l| l.starts_with("ENV ")) {
        for pair in line["ENV ".len()..].split_whitespace() {
            let (key, value) = pair.split_once('=').expect("ENV KEY=value");
            assert!(!value.is_empty(), "{key} is set empty");
            set.push(key.to_owned());
        }
    }
    assert!(
        !set.is_empty(),
        "the Dockerfile sets the container defaults"
    );
    for key in set {
        assert!(
            read.contains(&key),
            "the Dockerfile sets {key}, which no service reads"
        );
    }
    for stage in ["AS build", "AS litecoind", "AS rot"] {
        assert!(
            dockerfile.contains(stage),
            "Dockerfile lacks the stage {stage}"
        );
    }
    assert!(
        dockerfile.contains("\nUSER rot\n"),
        "the runtime image runs unprivileged"
    );
}

/// `KEY=value` lines of a systemd environment file, commented-out examples included.
fn env_file(name: &str) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(repo_file(&format!("docs/systemd/{name}"))).unwrap();
    text.lines()
        .map(|line| line.strip_prefix('#').unwrap_or(line))
        .filter_map(|line| line.split_once('='))
        .filter(|(key, _)| {
            !key.is_empty()
                && key
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        })
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect()
}

#[test]
fn the_systemd_examples_set_only_variables_the_services_read() {
    for (file, read) in [
        ("rot-server.env", server_vars()),
        ("rot-proxy.env", proxy_vars()),
    ] {
        let settings = env_file(file);
        assert!(settings.len() >= 3, "{file}: too few settings");
        for key in settings.keys() {
            assert!(read.contains(key), "{file}: sets {key}, which is not read");
        }
    }
    for (unit, data_var) in [
        ("rot-server.service", "ROT_DATA_DIR"),
        ("rot-proxy.service", "ROT_PROXY_DATA_DIR"),
    ] {
        let text = std::fs::read_to_string(repo_file(&format!("docs/systemd/{unit}"))).unwrap();
        for line in [
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "Restart=on-failure",
            "DynamicUser=yes",
        ] {
            assert!(text.contains(line), "{unit} lacks {line}");
        }
        let state = text
            .lines()
            .find_map(|l| l.strip_prefix("StateDirectory="))
            .unwrap_or_else(|| panic!("{unit} has no StateDirectory"));
        assert!(
            text.contains(&format!("Environment={data_var}=%S/{state}\n")),
            "{unit}: {data_var} must be the state directory, the only writable place"
        );
        let binary = unit.trim_end_matches(".service");
        assert!(text.contains(&format!("EnvironmentFile=/etc/rot/{binary}.env")));
    }
}

#[test]
fn every_service_option_has_an_environment_variable_and_help() {
    for command in [
        rot_server::config::Args::command(),
        rot_proxy::cli::Cli::command(),
    ] {
        assert!(command.get_version().is_some());
        for arg in command.get_arguments() {
            let id = arg.get_id().as_str();
            if ["help", "version"].contains(&id) {
                continue;
            }
            assert!(
                arg.get_env().is_some(),
                "{} --{id} has no environment variable",
                command.get_name()
            );
            assert!(
                arg.get_help().is_some_and(|h| !h.to_string().is_empty()),
                "{} --{id} is not explained",
                command.get_name()
            );
        }
    }
}

/// The compose defaults of the node's RPC credentials, which the harness node then uses.
const RPC_USER: &str = "rot";
const RPC_PASSWORD: &str = "regtest-only";

#[tokio::test]
async fn the_chain_init_job_mines_and_pays_once_against_a_real_node() {
    let compose = compose();
    let litecoind = &compose.services["litecoind"];
    let command = with_defaults(&litecoind.command.as_ref().unwrap().join(" "));
    assert!(command.contains(&format!("-rpcuser={RPC_USER} -rpcpassword={RPC_PASSWORD}")));
    let node = rot_harness::Litecoind::builder()
        .rpc_user_password(RPC_USER, RPC_PASSWORD)
        .start()
        .await
        .unwrap();
    let job = &compose.services["chain-init"];
    assert_eq!(
        job.entrypoint.as_deref(),
        Some(&["/bin/sh".to_owned(), "-c".to_owned()][..])
    );
    // The script as compose hands it to the container, pointed at the harness node.
    let script = with_defaults(&job.command.as_ref().unwrap()[0]).replace(
        "-rpcconnect=litecoind",
        &format!("-rpcconnect=127.0.0.1 -rpcport={}", node.rpc_port()),
    );
    for run in 1..=2 {
        let out = tokio::process::Command::new("/bin/sh")
            .args(["-c", &script])
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "run {run}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), "chain height 111\n");
    }
    let (height, _) = node.tip().await.unwrap();
    assert_eq!(height, 111, "110 blocks, then one confirming the payments");
    let block: serde_json::Value = node
        .call(
            "getblock",
            serde_json::json!([node.tip().await.unwrap().1.to_string()]),
        )
        .await
        .unwrap();
    assert_eq!(
        block["tx"].as_array().unwrap().len(),
        4,
        "the coinbase and three payments, made on the first run only"
    );
}
