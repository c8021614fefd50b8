//! The container layout, checked without a Docker engine: docker-compose.yml parses, runs the
//! three workers and a shardgate that serves config/docker.toml and loads the example schema;
//! config/docker.toml is config/example.toml's layout over the compose services; the build
//! context leaves local data and builds out.

use std::path::Path;

use serde_yaml::Value;

fn repo_file(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_sequence()
        .map(|s| {
            s.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn compose_serves_docker_toml_and_loads_the_example_schema() {
    let compose: Value = serde_yaml::from_str(&repo_file("docker-compose.yml")).expect("YAML");
    let services = &compose["services"];
    let cfg = shardgate::config::parse(&repo_file("config/docker.toml")).expect("docker.toml");
    for n in &cfg.nodes {
        let w = &services[n.name.as_str()];
        assert_eq!(
            w["image"].as_str(),
            Some("postgres:15"),
            "service {}",
            n.name
        );
        assert!(n.url.contains(&format!("@{}:5432/", n.name)), "{}", n.url);
        let initdb = w["environment"]["POSTGRES_INITDB_ARGS"]
            .as_str()
            .unwrap_or("");
        assert!(
            initdb.contains("--locale=C"),
            "service {}: C collation",
            n.name
        );
        assert!(
            !w["healthcheck"]["test"].is_null(),
            "service {}: healthcheck",
            n.name
        );
        let cond = &services["shardgate"]["depends_on"][n.name.as_str()]["condition"];
        assert_eq!(
            cond.as_str(),
            Some("service_healthy"),
            "shardgate waits for {}",
            n.name
        );
    }
    assert_eq!(cfg.listen, "0.0.0.0:6432");

    let sg = &services["shardgate"];
    assert_eq!(sg["build"].as_str(), Some("."));
    assert_eq!(strings(&sg["ports"]), ["6432:6432"]);
    let mounts = strings(&sg["volumes"]);
    let mounted = |host: &str| -> String {
        let m = mounts
            .iter()
            .find(|m| m.starts_with(host))
            .unwrap_or_else(|| panic!("{host} not mounted: {mounts:?}"));
        assert!(
            Path::new(env!("CARGO_MANIFEST_DIR")).join(host).exists(),
            "{host}"
        );
        m.split(':').nth(1).unwrap_or("").to_string()
    };
    let toml_in = mounted("./config/docker.toml");
    let schema_in = mounted("./config/example-schema.sql");
    let command = strings(&sg["command"]);
    let arg = |flag: &str| {
        let i = command
            .iter()
            .position(|a| a == flag)
            .unwrap_or_else(|| panic!("{flag} in {command:?}"));
        command.get(i + 1).cloned().unwrap_or_default()
    };
    assert_eq!(arg("--config"), toml_in);
    assert_eq!(arg("--schema"), schema_in);
}

#[test]
fn docker_toml_has_the_example_tables() {
    let tables = |name: &str| {
        let text = repo_file(name);
        text[text.find("[[tables]]").expect("tables")..].to_string()
    };
    assert_eq!(tables("config/docker.toml"), tables("config/example.toml"));
}

#[test]
fn build_context_leaves_out_local_data_and_builds() {
    let ignore = repo_file(".dockerignore");
    let lines: Vec<&str> = ignore
        .lines()
        .map(|l| l.trim().trim_end_matches('/'))
        .collect();
    for p in ["target", "shardgate-data", ".git"] {
        assert!(
            lines.contains(&p),
            ".dockerignore should exclude {p}: {ignore}"
        );
    }
    let dockerfile = repo_file("Dockerfile");
    assert!(dockerfile.contains("cargo build --release"), "{dockerfile}");
    assert!(
        dockerfile.contains("ENTRYPOINT [\"shardgate\"]"),
        "{dockerfile}"
    );
}
