//! No cluster runs here, so the deployment files are checked by reading
//! them: probes, ports, security context, secrets, the dashboard's metrics.

use serde::Deserialize;
use serde_json::Value;

fn docs(path: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).unwrap())
        .collect()
}

#[test]
fn deployment_probes_ports_and_security() {
    let d = &docs("deploy/kubernetes/deployment.yaml")[0];
    assert_eq!(d["kind"], "Deployment");
    assert_eq!(d["spec"]["replicas"], 3);
    let pod = &d["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert!(
        pod["terminationGracePeriodSeconds"].as_i64().unwrap() > 25,
        "longer than the drain timeout"
    );
    let c = &pod["containers"][0];
    let ports: Vec<i64> = c["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["containerPort"].as_i64().unwrap())
        .collect();
    assert_eq!(ports, vec![50051, 9090]);
    assert_eq!(c["readinessProbe"]["grpc"]["port"], 50051);
    assert_eq!(
        c["readinessProbe"]["grpc"]["service"],
        "tessera.v1.TokenAuthority"
    );
    assert!(
        c["readinessProbe"]["failureThreshold"].as_i64().unwrap() >= 2,
        "readiness rides out one missed ping"
    );
    // Liveness (and startup) ask `liveness`, which stays SERVING through a
    // Redis outage; `""` or the service would restart the fleet.
    for probe in ["livenessProbe", "startupProbe"] {
        assert_eq!(c[probe]["grpc"]["port"], 50051, "{probe}");
        assert_eq!(
            c[probe]["grpc"]["service"],
            tessera::LIVENESS_SERVICE,
            "{probe}"
        );
    }
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(c["securityContext"]["capabilities"]["drop"][0], "ALL");
    for kind in ["requests", "limits"] {
        assert!(
            c["resources"][kind]["cpu"].is_string() && c["resources"][kind]["memory"].is_string(),
            "{kind}"
        );
    }
    let env: Vec<&str> = c["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    for needed in [
        "TESSERA_LISTEN",
        "TESSERA_SIGNING_KEY",
        "TESSERA_CALLERS",
        "TESSERA_REDIS_URL",
    ] {
        assert!(env.contains(&needed), "{needed}");
    }
    let secrets: Vec<&str> = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["secret"]["secretName"].as_str())
        .collect();
    assert_eq!(secrets, vec!["tessera-signing-key", "tessera-callers"]);
    // Every flag named in the manifest exists.
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for name in env {
        assert!(
            help.contains(name),
            "{name} is not a tessera serve variable"
        );
    }
}

#[test]
fn service_and_disruption_budget() {
    let s = &docs("deploy/kubernetes/service.yaml")[0];
    let ports: Vec<i64> = s["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["port"].as_i64().unwrap())
        .collect();
    assert_eq!(ports, vec![50051], "the admin port is not a Service");
    // The admin port is reachable from the monitoring namespace only.
    let np = &docs("deploy/kubernetes/networkpolicy.yaml")[0];
    assert_eq!(np["kind"], "NetworkPolicy");
    let rules = np["spec"]["ingress"].as_array().unwrap();
    let admin = rules
        .iter()
        .find(|r| r["ports"][0]["port"] == 9090)
        .expect("a rule for the admin port");
    assert!(admin["from"]
        .as_array()
        .unwrap()
        .iter()
        .all(|f| f["namespaceSelector"]["matchLabels"].is_object()));
    let p = &docs("deploy/kubernetes/pdb.yaml")[0];
    assert_eq!(p["kind"], "PodDisruptionBudget");
    assert!(p["spec"]["minAvailable"].as_i64().unwrap() >= 2);
    let secrets = docs("deploy/kubernetes/secrets.example.yaml");
    assert_eq!(secrets.len(), 3);
}

#[test]
fn dashboard_uses_only_metrics_we_export() {
    let text = std::fs::read_to_string(format!(
        "{}/deploy/grafana/tessera-dashboard.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let dash: Value = serde_json::from_str(&text).unwrap();
    let known = [
        tessera::telemetry::TOKENS_ISSUED,
        tessera::telemetry::REFRESHES,
        tessera::telemetry::VERIFICATIONS,
        tessera::telemetry::RENEWALS,
        tessera::telemetry::REVOCATIONS,
        tessera::telemetry::RPC_DURATION,
        tessera::telemetry::STORE_DURATION,
        tessera::telemetry::FEED_LAG,
        tessera::telemetry::WATCHERS,
        tessera::telemetry::CACHE_ENTRIES,
        tessera::telemetry::FEED_IN_SYNC,
        tessera::telemetry::FINGERPRINT_MISMATCHES,
        tessera::telemetry::FEED_PARTITION_LAG,
        tessera::telemetry::CLOCK_OFFSET,
        tessera::telemetry::INTROSPECTIONS,
        tessera::telemetry::HTTP_REQUESTS,
        tessera::telemetry::HTTP_DURATION,
        tessera::telemetry::VERIFY_CACHE_HITS,
        tessera::telemetry::VERIFY_CACHE_MISSES,
        tessera::telemetry::VERIFY_CACHE_EVICTIONS,
        tessera::telemetry::VERIFY_CACHE_CLEARS,
        tessera::telemetry::VERIFY_CACHE_ENTRIES,
        tessera::telemetry::VERIFY_CACHE_BYTES,
        tessera::telemetry::BUILD_INFO,
        tessera::transport::limits::OPEN_CONNECTIONS,
    ];
    let mut count = 0;
    for panel in dash["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().unwrap() {
            let expr = t["expr"].as_str().unwrap();
            for word in expr.split(|c: char| !(c.is_alphanumeric() || c == '_')) {
                if word.starts_with("tessera_") {
                    let base = word
                        .trim_end_matches("_bucket")
                        .trim_end_matches("_count")
                        .trim_end_matches("_sum");
                    assert!(
                        known.contains(&base),
                        "dashboard uses unknown metric {word}"
                    );
                    count += 1;
                }
            }
        }
    }
    assert!(count >= 10);
}

#[test]
fn dockerfile_is_multistage_nonroot_and_pinned() {
    let text =
        std::fs::read_to_string(format!("{}/Dockerfile", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let froms: Vec<&str> = text.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(froms.len(), 2, "multi-stage");
    for f in &froms {
        assert!(
            !f.contains(":latest") && f.split_whitespace().nth(1).unwrap().contains(':'),
            "pinned: {f}"
        );
    }
    assert!(text.contains("USER nonroot"));
    assert!(text.contains("EXPOSE 50051 9090"));
}
