//! The deployment manifests parse, and every argument and environment value
//! they pass is accepted by the binary (`stacking check-config` with exactly
//! those arguments and that environment).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_yaml::Value;

fn deploy() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

fn yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()))
}

/// Runs the config check for `args` (role first) under exactly `env`.
fn check(args: &[String], env: &BTreeMap<String, String>, origin: &str) {
    let out = Command::new(env!("CARGO_BIN_EXE_stacking"))
        .args(["check-config", "--offline"])
        .args(args)
        .env_clear()
        .envs(env)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{origin}: stacking check-config {args:?} with {env:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn strings(v: &Value) -> Vec<String> {
    v.as_sequence()
        .map(|s| s.iter().map(|x| x.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

#[test]
fn knative_services_pass_the_config_check() {
    for transfer in ["s3", "inline", "elasticache"] {
        let mut trainers_num = None;
        let mut trainer_scale = None;
        for role in ["driver", "trainer", "reducer", "metatrainer"] {
            let path = deploy().join(format!("knative/{transfer}/service-{role}.yaml"));
            let doc = yaml(&path);
            assert_eq!(doc["apiVersion"], "serving.knative.dev/v1");
            assert_eq!(doc["kind"], "Service");
            assert_eq!(doc["metadata"]["name"], role);
            let template = &doc["spec"]["template"];
            let container = &template["spec"]["containers"][0];
            assert_eq!(container["name"], role, "{}", path.display());
            assert_eq!(container["ports"][0]["name"], "h2c");
            let args = strings(&container["args"]);
            assert_eq!(args[0], role);
            let mut env = BTreeMap::new();
            for e in container["env"].as_sequence().unwrap() {
                let name = e["name"].as_str().unwrap().to_string();
                let value = match e.get("value") {
                    Some(v) => v.as_str().unwrap().to_string(),
                    None => {
                        // From the Secret / ConfigMap the README creates.
                        let from = &e["valueFrom"];
                        let key = from["secretKeyRef"]["key"]
                            .as_str()
                            .or(from["configMapKeyRef"]["key"].as_str());
                        assert!(
                            key.is_some(),
                            "{name} in {}: neither value nor a key reference",
                            path.display()
                        );
                        format!("placeholder-{}", key.unwrap_or_default())
                    }
                };
                env.insert(name, value);
            }
            assert_eq!(env["TRANSFER_TYPE"], transfer.to_uppercase());
            if transfer == "s3" {
                assert!(
                    env.contains_key("AWS_ACCESS_KEY")
                        && env.contains_key("AWS_SECRET_KEY")
                        && env.contains_key("BUCKET_NAME")
                );
            }
            if transfer == "elasticache" {
                // The Service in deploy/redis/redis.yaml, by its cluster name.
                assert_eq!(env["BUCKET_NAME"], "redis.default.svc.cluster.local:6379");
                assert!(env.contains_key("ELASTICACHE_TTL_S"));
            }
            check(&args, &env, &path.display().to_string());
            if role == "driver" {
                trainers_num = Some(env["TrainersNum"].clone());
            }
            if role == "trainer" {
                let ann = &template["metadata"]["annotations"];
                let (min, max) = (
                    ann["autoscaling.knative.dev/min-scale"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                    ann["autoscaling.knative.dev/max-scale"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                );
                assert_eq!(min, max);
                assert_eq!(template["spec"]["containerConcurrency"], 1);
                trainer_scale = Some(min);
            }
        }
        assert_eq!(
            trainers_num, trainer_scale,
            "trainer scale must equal TrainersNum ({transfer})"
        );
    }
}

#[test]
fn compose_services_pass_the_config_check() {
    for (file, store) in [
        ("docker-compose-s3.yml", "minio"),
        ("docker-compose-s3-tracing.yml", "minio"),
        ("docker-compose-elasticache.yml", "redis"),
    ] {
        let path = deploy().join("compose").join(file);
        let doc = yaml(&path);
        let services = doc["services"].as_mapping().unwrap();
        assert!(
            services.contains_key(store),
            "{file} lacks its store {store}"
        );
        if file.contains("tracing") {
            assert!(services.contains_key("zipkin"), "{file} lacks Zipkin");
        }
        let mut roles = Vec::new();
        for (name, svc) in services {
            let args = strings(&svc["command"]);
            let Some(role) = args
                .first()
                .filter(|r| ["driver", "trainer", "reducer", "metatrainer"].contains(&r.as_str()))
            else {
                continue;
            };
            roles.push(role.clone());
            let env: BTreeMap<String, String> = svc["environment"]
                .as_mapping()
                .unwrap()
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().unwrap().to_string(),
                        v.as_str().unwrap().to_string(),
                    )
                })
                .collect();
            check(&args, &env, &format!("{file}: {}", name.as_str().unwrap()));
        }
        roles.sort();
        assert_eq!(
            roles,
            ["driver", "metatrainer", "reducer", "trainer"],
            "{file}"
        );
    }
}

/// The vSwarm route: `kn_deploy.sh` fills `${AWS_ACCESS_KEY}` and friends in,
/// and the filled-in manifests pass the same config check.
#[test]
fn kn_deploy_fills_the_placeholders_and_refuses_unset_ones() {
    let script = deploy().join("kn_deploy.sh");
    let files: Vec<PathBuf> = ["driver", "trainer", "reducer", "metatrainer"]
        .iter()
        .map(|r| deploy().join(format!("knative/s3-envsubst/service-{r}.yaml")))
        .collect();
    let out = Command::new("bash")
        .arg(&script)
        .arg("--dry-run")
        .args(&files)
        .env("AWS_ACCESS_KEY", "AKIAEXAMPLE")
        .env("AWS_SECRET_KEY", "secret$not-a-var")
        .env("BUCKET_NAME", "my-bucket")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!text.contains("${"), "a placeholder is left: {text}");
    let docs: Vec<Value> = text
        .split("\n---\n")
        .map(|d| d.trim_start_matches("---\n"))
        .filter(|d| !d.trim().is_empty())
        .map(|d| serde_yaml::from_str(d).unwrap())
        .collect();
    assert_eq!(docs.len(), 4);
    for doc in &docs {
        let container = &doc["spec"]["template"]["spec"]["containers"][0];
        let mut env = BTreeMap::new();
        for e in container["env"].as_sequence().unwrap() {
            env.insert(
                e["name"].as_str().unwrap().to_string(),
                e["value"].as_str().unwrap().to_string(),
            );
        }
        assert_eq!(env["AWS_ACCESS_KEY"], "AKIAEXAMPLE");
        assert_eq!(env["AWS_SECRET_KEY"], "secret$not-a-var");
        assert_eq!(env["BUCKET_NAME"], "my-bucket");
        check(&strings(&container["args"]), &env, "kn_deploy.sh output");
    }
    let out = Command::new("bash")
        .arg(&script)
        .arg("--dry-run")
        .args(&files)
        .env("AWS_ACCESS_KEY", "AKIAEXAMPLE")
        .env_remove("AWS_SECRET_KEY")
        .env_remove("BUCKET_NAME")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("AWS_SECRET_KEY") && err.contains("BUCKET_NAME"),
        "{err}"
    );
    assert!(
        out.stdout.is_empty(),
        "nothing printed or applied before the check"
    );
}

#[test]
fn compose_files_say_how_to_build_the_image_they_name() {
    for file in ["docker-compose-s3.yml", "docker-compose-s3-tracing.yml"] {
        let doc = yaml(&deploy().join("compose").join(file));
        for (name, svc) in doc["services"].as_mapping().unwrap() {
            let Some(image) = svc["image"].as_str() else {
                continue;
            };
            if !image.contains("stacking") {
                continue;
            }
            let build = &svc["build"];
            let context = build["context"].as_str().unwrap_or_else(|| {
                panic!(
                    "{file}: {} names {image} but has no build section",
                    name.as_str().unwrap()
                )
            });
            let dockerfile = build["dockerfile"].as_str().unwrap();
            let root = deploy().join("compose").join(context);
            assert!(
                root.join(dockerfile).is_file(),
                "{file}: {dockerfile} missing under {context}"
            );
            assert!(
                root.join("Cargo.toml").is_file(),
                "{file}: context {context} is not the repository"
            );
        }
    }
}

/// The Redis server of the ELASTICACHE manifests: a Deployment and the
/// Service whose name BUCKET_NAME gives, on Redis's port, with a memory cap
/// that evicts only keys with an expiry.
#[test]
fn the_redis_manifest_serves_the_address_the_functions_use() {
    let path = deploy().join("redis/redis.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let docs: Vec<Value> = serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["Deployment", "Service"]);
    let service = &docs[1];
    assert_eq!(service["metadata"]["name"], "redis");
    assert_eq!(service["metadata"]["namespace"], "default");
    assert_eq!(service["spec"]["ports"][0]["port"], 6379);
    let container = &docs[0]["spec"]["template"]["spec"]["containers"][0];
    let args = strings(&container["args"]);
    let policy = args.iter().position(|a| a == "--maxmemory-policy").unwrap();
    assert_eq!(args[policy + 1], "volatile-ttl");
    assert_eq!(
        docs[0]["spec"]["selector"]["matchLabels"],
        service["spec"]["selector"]
    );
}
