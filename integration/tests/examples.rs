//! The ecosystem examples are well-formed and say what bcvk needs: the GitHub Actions workflow
//! parses as YAML and has the KVM step and the marked bcvk command; the Quadlet unit has the
//! keys a bcvk service needs, with consistent timeouts. (quadlet-check.sh runs a real Quadlet
//! generator on the unit; this test needs nothing but the files.)

use std::collections::BTreeMap;

use bcvk_integration::examples::*;
use serde_yaml::Value;

const STORE_VOLUME: &str = "/var/lib/containers/storage:/run/host-storage:ro";

fn workflow() -> Value {
    let path = github_actions_workflow_path();
    let text = std::fs::read_to_string(&path).unwrap();
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{} is not YAML: {e}", path.display()))
}

/// The workflow's only job's steps.
fn steps(w: &Value) -> Vec<Value> {
    let jobs = w["jobs"].as_mapping().expect("a jobs: mapping");
    assert_eq!(jobs.len(), 1, "one job");
    let job = jobs.values().next().unwrap();
    assert_eq!(job["runs-on"].as_str(), Some("ubuntu-24.04"));
    job["steps"].as_sequence().expect("steps: a list").clone()
}

fn run_scripts(w: &Value) -> Vec<String> {
    steps(w)
        .iter()
        .filter_map(|s| s["run"].as_str().map(str::to_string))
        .collect()
}

/// `needle` occurs in `hay` as consecutive words.
fn has_words(hay: &[String], needle: &[&str]) -> bool {
    hay.windows(needle.len())
        .any(|w| w.iter().zip(needle).all(|(a, b)| a == b))
}

#[test]
fn workflow_runs_on_push() {
    let w = workflow();
    assert_eq!(w["name"].as_str(), Some("bcvk boot test"));
    let on = &w["on"];
    assert!(
        on.get("push").is_some() || on.as_str() == Some("push"),
        "on: push, got {on:?}"
    );
}

#[test]
fn workflow_enables_kvm_with_udev() {
    let w = workflow();
    let script = run_scripts(&w)
        .into_iter()
        .find(|s| s.contains("99-kvm4all.rules"))
        .expect("a step writing the udev KVM rule");
    let lines: Vec<&str> = script.lines().map(str::trim).collect();
    assert!(
        lines.contains(
            &r#"echo 'KERNEL=="kvm", GROUP="kvm", MODE="0666", OPTIONS+="static_node=kvm"' | sudo tee /etc/udev/rules.d/99-kvm4all.rules"#
        ),
        "{script}"
    );
    assert!(
        lines.contains(&"sudo udevadm control --reload-rules"),
        "{script}"
    );
    assert!(
        lines.contains(&"sudo udevadm trigger --name-match=kvm"),
        "{script}"
    );
}

#[test]
fn workflow_lifts_ubuntus_userns_restriction() {
    let w = workflow();
    assert!(
        run_scripts(&w).iter().any(|s| s
            .lines()
            .any(|l| l.trim() == "sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0")),
        "a step lifting kernel.apparmor_restrict_unprivileged_userns"
    );
}

#[test]
fn workflow_builds_the_image_into_roots_store() {
    let w = workflow();
    assert!(
        run_scripts(&w).iter().any(|s| s
            .lines()
            .any(|l| l.trim() == "sudo podman build -t localhost/my-bootc .")),
        "a step building localhost/my-bootc with sudo podman"
    );
}

#[test]
fn workflow_marked_command_is_a_bcvk_podman_run() {
    let argv = github_actions_command();
    assert_eq!(argv[..2], ["podman", "run"], "{argv:?}");
    assert!(has_words(&argv, &["--device", "/dev/kvm"]), "{argv:?}");
    assert!(has_words(&argv, &["-v", STORE_VOLUME]), "{argv:?}");
    // No added privileges: podman's default capabilities are enough; only AppArmor's mount
    // rule is lifted (Ubuntu runners: podman's profile denies mount).
    assert!(
        !argv.iter().any(|a| a == "--privileged" || a == "--cap-add"),
        "{argv:?}"
    );
    assert!(
        has_words(&argv, &["--security-opt", "apparmor=unconfined"]),
        "{argv:?}"
    );
    assert!(argv.contains(&"--rm".to_string()), "{argv:?}");
    // Non-interactive: a CI job has no terminal.
    assert!(!argv.iter().any(|a| a == "-it" || a == "-t"), "{argv:?}");
    assert!(
        has_words(
            &argv,
            &[
                "localhost/bcvk:latest",
                GITHUB_ACTIONS_TARGET,
                "--",
                "systemctl",
                "is-system-running",
                "--wait"
            ]
        ),
        "{argv:?}"
    );
}

#[test]
fn workflow_marked_command_is_what_the_step_runs() {
    // The markers sit inside a step's script, so the line the suite tests is the line CI runs.
    let w = workflow();
    let text = std::fs::read_to_string(github_actions_workflow_path()).unwrap();
    let line = marked_line(&text).unwrap();
    let script = run_scripts(&w)
        .into_iter()
        .find(|s| s.contains(COMMAND_BEGIN))
        .expect("a step whose script holds the markers");
    assert_eq!(marked_line(&script).unwrap(), line);
}

#[test]
fn workflow_runs_without_edits_or_says_what_to_set_first() {
    // No placeholder to edit: bcvk is found from the repository's owner or from repository
    // variables, and the first step fails naming the variables when it cannot be had.
    let text = std::fs::read_to_string(github_actions_workflow_path()).unwrap();
    assert!(
        !text.contains("ghcr.io/OWNER") && !text.contains(" OWNER/bcvk"),
        "a placeholder is back"
    );
    let w = workflow();
    let first = &steps(&w)[0];
    assert_eq!(first["id"].as_str(), Some("bcvk"), "{first:?}");
    let env = &first["env"];
    assert_eq!(
        env["OWNER"].as_str(),
        Some("${{ github.repository_owner }}")
    );
    assert_eq!(env["BCVK_IMAGE"].as_str(), Some("${{ vars.BCVK_IMAGE }}"));
    assert_eq!(env["BCVK_REPO"].as_str(), Some("${{ vars.BCVK_REPO }}"));
    let script = first["run"].as_str().unwrap();
    let error = script
        .lines()
        .find(|l| l.contains("::error"))
        .expect("an ::error line");
    assert!(
        error.contains("BCVK_IMAGE") && error.contains("BCVK_REPO"),
        "{error}"
    );
    // The later steps follow what it found.
    let all = steps(&w);
    let ifs: Vec<&str> = all.iter().filter_map(|s| s["if"].as_str()).collect();
    assert_eq!(
        ifs,
        [
            "steps.bcvk.outputs.from == 'source'",
            "steps.bcvk.outputs.from == 'source'"
        ]
    );
}

fn project_workflow(name: &str) -> Value {
    let path = repo_root().join(".github/workflows").join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{} is not YAML: {e}", path.display()))
}

#[test]
fn project_tests_with_the_readme_command_on_kvm() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    assert!(
        readme.contains("\n./integration/test\n"),
        "the README's test command"
    );
    let w = project_workflow("test.yml");
    assert!(
        w["on"].get("workflow_call").is_some(),
        "release.yml calls it"
    );
    let job = &w["jobs"]["integration"];
    assert!(job["runs-on"].as_str().unwrap().starts_with("ubuntu-"));
    let scripts: Vec<&str> = job["steps"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|s| s["run"].as_str())
        .collect();
    assert!(scripts
        .iter()
        .any(|s| s.contains(r#"MODE="0666""#) && s.contains("udevadm trigger --name-match=kvm")));
    assert!(
        scripts
            .iter()
            .any(|s| s.trim().ends_with(" ./integration/test")),
        "{scripts:?}"
    );
}

#[test]
fn project_releases_a_labelled_image_on_a_tag() {
    let w = project_workflow("release.yml");
    assert_eq!(w["on"]["push"]["tags"][0].as_str(), Some("v*"));
    assert_eq!(
        w["jobs"]["test"]["uses"].as_str(),
        Some("./.github/workflows/test.yml")
    );
    let job = &w["jobs"]["image"];
    assert_eq!(job["needs"].as_str(), Some("test"));
    assert_eq!(job["permissions"]["packages"].as_str(), Some("write"));
    assert_eq!(
        job["env"]["REGISTRY"].as_str(),
        Some("${{ vars.REGISTRY || 'ghcr.io' }}")
    );
    let text = serde_yaml::to_string(job).unwrap();
    for label in ["version", "revision", "source", "licenses"] {
        assert!(
            text.contains(&format!("--label \"org.opencontainers.image.{label}=")),
            "{label}"
        );
    }
    // Both architectures under one reference: the manifest list and every image in it.
    assert!(text.contains("./integration/build-multiarch.sh"), "{text}");
    assert!(text.contains("podman manifest push --all"), "{text}");
    // Signed keyless by digest, with its SBOM attached as a signed attestation.
    assert_eq!(job["permissions"]["id-token"].as_str(), Some("write"));
    assert!(text.contains("cosign sign --yes \"$REF\""), "{text}");
    assert!(
        text.contains("cosign attest --yes --type spdxjson"),
        "{text}"
    );
    assert!(text.contains("anchore/sbom-action@"), "{text}");
}

/// The release's tags, from its own "Names and labels" script run as GitHub would: a final
/// release moves :X.Y and :latest, a pre-release only gets its own tag.
#[test]
fn release_tags_latest_only_for_final_releases() {
    let w = project_workflow("release.yml");
    let script = w["jobs"]["image"]["steps"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|s| s["name"].as_str() == Some("Names and labels"))
        .and_then(|s| s["run"].as_str())
        .expect("a Names and labels step")
        .to_string();
    let tags = |tag: &str| -> Option<String> {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let r = std::process::Command::new("bash")
            .args(["-e", "-c", &script])
            .current_dir(repo_root())
            .env("REGISTRY", "ghcr.io")
            .env("IMAGE_NAME", "Owner/bcvk")
            .env("GITHUB_REF_NAME", tag)
            .env("GITHUB_OUTPUT", &out)
            .env("GITHUB_SERVER_URL", "https://github.com")
            .env("GITHUB_REPOSITORY", "Owner/bcvk")
            .env("GITHUB_SHA", "0123abc")
            .output()
            .unwrap();
        if !r.status.success() {
            return None;
        }
        let text = std::fs::read_to_string(&out).unwrap();
        assert!(text.contains("image=ghcr.io/owner/bcvk\n"), "{text}");
        text.lines()
            .find_map(|l| l.strip_prefix("tags="))
            .map(str::to_string)
    };
    assert_eq!(tags("v1.2.3").as_deref(), Some("1.2.3 1.2 latest"));
    assert_eq!(tags("v1.3.0-rc.1").as_deref(), Some("1.3.0-rc.1"));
    assert_eq!(tags("v2.0.0-beta").as_deref(), Some("2.0.0-beta"));
    assert_eq!(tags("nightly"), None, "a tag that is no version is refused");
}

/// A systemd-style unit: section -> key -> values (keys may repeat). Comments and blank lines
/// are skipped; continuation lines are not used by the example and are refused.
fn parse_unit(text: &str) -> BTreeMap<String, BTreeMap<String, Vec<String>>> {
    let mut units: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    let mut section: Option<String> = None;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        assert!(!line.ends_with('\\'), "line {}: continuation lines", n + 1);
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = Some(name.to_string());
            units.entry(name.to_string()).or_default();
            continue;
        }
        let (k, v) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("line {}: not KEY=VALUE: {raw}", n + 1));
        let s = section
            .clone()
            .unwrap_or_else(|| panic!("line {}: a key before any [section]", n + 1));
        units
            .entry(s)
            .or_default()
            .entry(k.trim().to_string())
            .or_default()
            .push(v.trim().to_string());
    }
    units
}

fn one<'a>(
    u: &'a BTreeMap<String, BTreeMap<String, Vec<String>>>,
    section: &str,
    key: &str,
) -> &'a str {
    let v = u
        .get(section)
        .and_then(|s| s.get(key))
        .unwrap_or_else(|| panic!("[{section}] has no {key}="));
    assert_eq!(v.len(), 1, "[{section}] {key}= more than once");
    &v[0]
}

fn seconds(v: &str) -> u64 {
    v.parse()
        .unwrap_or_else(|_| panic!("{v:?}: expected plain seconds"))
}

#[test]
fn quadlet_unit_has_what_bcvk_needs() {
    let text = std::fs::read_to_string(quadlet_unit_path()).unwrap();
    let u = parse_unit(&text);
    assert_eq!(one(&u, "Container", "Image"), "localhost/bcvk:latest");
    assert_eq!(one(&u, "Container", "Notify"), "true");
    // Only where the host has it (Podman 4.5+): without KVM bcvk boots under TCG.
    assert_eq!(one(&u, "Container", "AddDevice"), "-/dev/kvm");
    assert_eq!(one(&u, "Container", "Volume"), STORE_VOLUME);
    // No added privileges: podman's default capabilities are enough. Only keys Quadlet 4.4
    // knows (StopTimeout= and Health*= are newer: their options go through PodmanArgs=).
    let podman_args = u["Container"]
        .get("PodmanArgs")
        .cloned()
        .unwrap_or_default();
    for args in &podman_args {
        for word in shell_split(args).unwrap() {
            assert!(
                !["--privileged", "--cap-add", "--security-opt"]
                    .iter()
                    .any(|w| word.starts_with(w)),
                "{word}"
            );
        }
    }
    for key in [
        "StopTimeout",
        "HealthCmd",
        "HealthInterval",
        "HealthStartPeriod",
    ] {
        assert!(
            !u["Container"].contains_key(key),
            "{key}= needs Quadlet 5: {u:?}"
        );
    }
    let health = podman_args
        .iter()
        .find(|a| a.contains("--health-cmd"))
        .expect("a health check");
    assert!(
        shell_split(health)
            .unwrap()
            .contains(&"bcvk status --health".to_string()),
        "{health}"
    );
    let exec = shell_split(one(&u, "Container", "Exec")).unwrap();
    assert_eq!(exec[0], "localhost/bcvk-test/debian:latest", "{exec:?}");
    assert_eq!(one(&u, "Install", "WantedBy"), "default.target");
    assert_eq!(one(&u, "Service", "Restart"), "on-failure");
    // No restart for what a restart cannot fix: exactly the documented codes of mistakes and
    // refusals, and podman's; bcvk's own faults (71), guest failures (70) and timeouts (75) are restarted.
    use bcvk::exit::Exit;
    let prevent: Vec<i32> = one(&u, "Service", "RestartPreventExitStatus")
        .split_whitespace()
        .map(|c| c.parse().unwrap())
        .collect();
    let mut want: Vec<i32> = [
        Exit::Usage,
        Exit::StoreCorrupt,
        Exit::NotFound,
        Exit::Unavailable,
        Exit::Refused,
    ]
    .iter()
    .map(|e| e.code())
    .collect();
    // And podman's own failures before bcvk runs (podman run(1)'s exit codes): 125 podman
    // itself, 126 the entrypoint cannot be invoked, 127 it is not found.
    want.extend([125, 126, 127]);
    assert_eq!(prevent, want);
}

#[test]
fn quadlet_unit_timeouts_nest() {
    let text = std::fs::read_to_string(quadlet_unit_path()).unwrap();
    let u = parse_unit(&text);
    let exec = shell_split(one(&u, "Container", "Exec")).unwrap();
    let bcvk_stop = exec
        .iter()
        .position(|a| a == "--stop-timeout")
        .map(|i| seconds(&exec[i + 1]))
        .expect("Exec= sets bcvk's --stop-timeout");
    let podman_args: Vec<String> = u["Container"]["PodmanArgs"]
        .iter()
        .flat_map(|a| shell_split(a).unwrap())
        .collect();
    let podman_stop = podman_args
        .iter()
        .position(|a| a == "--stop-timeout")
        .map(|i| seconds(&podman_args[i + 1]))
        .expect("PodmanArgs= sets podman's --stop-timeout");
    let systemd_stop = seconds(one(&u, "Service", "TimeoutStopSec"));
    assert!(
        bcvk_stop < podman_stop && podman_stop < systemd_stop,
        "stop timeouts must nest: bcvk {bcvk_stop} < podman {podman_stop} < systemd {systemd_stop}"
    );
    // Longer than bcvk's default --ready-timeout (600 s), so bcvk, not systemd, gives up first.
    let start = seconds(one(&u, "Service", "TimeoutStartSec"));
    assert!(start > 600, "TimeoutStartSec={start}");
}

// ---------------------------------------------------------------- Kubernetes

mod kubernetes {
    use bcvk_integration::kube::*;
    use serde_yaml::Value;

    fn read(path: std::path::PathBuf) -> (String, Value) {
        let text = std::fs::read_to_string(&path).unwrap();
        let v = serde_yaml::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not YAML: {e}", path.display()));
        (text, v)
    }

    fn spec(doc: &Value) -> &Value {
        match doc["kind"].as_str() {
            Some("Job") => &doc["spec"]["template"]["spec"],
            _ => &doc["spec"],
        }
    }

    fn strs(v: &Value) -> Vec<String> {
        v.as_sequence()
            .unwrap_or_else(|| panic!("not a list: {v:?}"))
            .iter()
            .map(|s| s.as_str().expect("a string").to_string())
            .collect()
    }

    /// `--flag=VALUE` among a container's args.
    fn flag(args: &[String], name: &str) -> Option<String> {
        args.iter()
            .find_map(|a| a.strip_prefix(&format!("--{name}=")).map(str::to_string))
    }

    fn mib(q: &str) -> u64 {
        if let Some(n) = q.strip_suffix("Mi") {
            n.parse().unwrap()
        } else if let Some(n) = q.strip_suffix("Gi") {
            n.parse::<u64>().unwrap() * 1024
        } else {
            panic!("memory quantity {q}: use Mi or Gi")
        }
    }

    /// What both examples must say: the target image is pulled by the kubelet and copied by
    /// an init container of it into the volume bcvk boots with --rootfs (read-only there);
    /// /dev/kvm through the device-plugin resource, no privileges; memory covers the guest;
    /// the grace period outlasts bcvk's stop timeout.
    fn common(doc: &Value) -> Vec<String> {
        let s = spec(doc);
        assert_eq!(s["automountServiceAccountToken"].as_bool(), Some(false));
        let inits = s["initContainers"].as_sequence().expect("initContainers");
        assert_eq!(inits.len(), 1);
        let init = &inits[0];
        assert_eq!(init["image"].as_str(), Some(EXAMPLE_TARGET));
        let cp = strs(&init["command"]);
        let volume = init["volumeMounts"][0]["name"].as_str().unwrap();
        let copy_to = init["volumeMounts"][0]["mountPath"].as_str().unwrap();
        assert_eq!(cp, ["cp", "-ax", "/.", &format!("{copy_to}/")]);
        let containers = s["containers"].as_sequence().unwrap();
        assert_eq!(containers.len(), 1);
        let vm = &containers[0];
        assert_eq!(vm["image"].as_str(), Some(EXAMPLE_BCVK));
        let args = strs(&vm["args"]);
        let mount = vm["volumeMounts"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|m| m["name"].as_str() == Some(volume))
            .expect("bcvk mounts the copied root");
        assert_eq!(mount["readOnly"].as_bool(), Some(true));
        assert_eq!(
            flag(&args, "rootfs").as_deref(),
            mount["mountPath"].as_str()
        );
        let volumes = s["volumes"].as_sequence().unwrap();
        assert!(volumes
            .iter()
            .any(|v| v["name"].as_str() == Some(volume) && v["emptyDir"].is_mapping()));
        let res = &vm["resources"];
        assert_eq!(res["limits"][KVM_RESOURCE].as_str(), Some("1"));
        let guest = mib(&(flag(&args, "memory").unwrap().replace('G', "Gi")));
        let request = mib(res["requests"]["memory"].as_str().unwrap());
        assert_eq!(res["limits"]["memory"], res["requests"]["memory"]);
        assert!(
            request >= guest + 384,
            "requests {request} MiB cannot hold a {guest} MiB guest and its overhead"
        );
        let text = serde_yaml::to_string(doc).unwrap();
        assert!(!text.contains("privileged"), "no privileged pods");
        assert!(!text.contains("SYS_ADMIN"), "no added capabilities");
        let sc = &vm["securityContext"];
        assert_eq!(sc["seccompProfile"]["type"].as_str(), Some("Unconfined"));
        assert_eq!(sc["appArmorProfile"]["type"].as_str(), Some("Unconfined"));
        let grace = s["terminationGracePeriodSeconds"].as_u64().unwrap();
        let stop = flag(&args, "stop-timeout").map_or(30, |t| t.parse().unwrap());
        assert!(
            grace >= stop + 10,
            "grace {grace} s leaves no room after bcvk's {stop} s"
        );
        args
    }

    #[test]
    fn pod_example_is_a_ready_probed_vm() {
        let (_, doc) = read(pod_path());
        assert_eq!(doc["kind"].as_str(), Some("Pod"));
        let args = common(&doc);
        assert!(!args.contains(&"--".to_string()), "a service, no command");
        let vm = &doc["spec"]["containers"][0];
        assert_eq!(readiness_command(vm).unwrap(), ["bcvk", "status"]);
    }

    #[test]
    fn job_example_runs_one_command_and_fails_fast() {
        let (_, doc) = read(job_path());
        assert_eq!(doc["kind"].as_str(), Some("Job"));
        assert_eq!(doc["spec"]["backoffLimit"].as_u64(), Some(0));
        assert_eq!(
            doc["spec"]["template"]["spec"]["restartPolicy"].as_str(),
            Some("Never")
        );
        let args = common(&doc);
        assert!(args.contains(&"--console-stderr".to_string()));
        let dash = args.iter().position(|a| a == "--").expect("-- COMMAND");
        assert!(dash + 1 < args.len());
    }

    /// The examples against the Kubernetes API's own schemas (strict: unknown fields fail), with
    /// PyPI's kubernetes-validate, which ships them: from 1.30 (the first with appArmorProfile)
    /// to the newest it knows.
    #[test]
    fn examples_validate_against_the_kubernetes_schema() {
        let build = std::env::var("BCVK_BUILD")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|_| bcvk_integration::examples::repo_root().join("build"));
        let kv = build.join("venv/bin/kubernetes-validate");
        assert!(
            kv.exists(),
            "{} is missing: run integration/setup-host.sh",
            kv.display()
        );
        for version in ["1.30.0", "1.37.0"] {
            let out = std::process::Command::new(&kv)
                .args(["--strict", "-k", version])
                .arg(pod_path())
                .arg(job_path())
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{version}: {text}");
            assert_eq!(text.matches("passed").count(), 2, "{version}: {text}");
        }
    }

    #[test]
    fn adapted_for_podman_a_job_is_its_pod_template() {
        let (text, _) = read(job_path());
        let a = Adapt {
            name: "t-1",
            target_image: "localhost/guest:latest",
            bcvk_image: "localhost/bcvk:latest",
            kvm: true,
        };
        let mut pod = for_podman(&text, &a).unwrap();
        assert_eq!(pod["kind"].as_str(), Some("Pod"));
        assert_eq!(pod["metadata"]["name"].as_str(), Some("t-1"));
        assert_eq!(pod["spec"]["restartPolicy"].as_str(), Some("Never"));
        let (pod_text, _) = read(pod_path());
        let played = for_podman(&pod_text, &a).unwrap();
        assert_eq!(played["spec"]["restartPolicy"].as_str(), Some("Never"));
        let out = serde_yaml::to_string(&pod).unwrap();
        assert!(
            !out.contains("quay.io") && !out.contains(KVM_RESOURCE),
            "{out}"
        );
        assert_eq!(
            pod["spec"]["initContainers"][0]["image"].as_str(),
            Some("localhost/guest:latest")
        );
        let vm = container(&mut pod, "vm").unwrap();
        assert_eq!(vm["image"].as_str(), Some("localhost/bcvk:latest"));
        assert!(vm["volumeMounts"]
            .as_sequence()
            .unwrap()
            .iter()
            .any(|m| m["mountPath"].as_str() == Some("/dev/kvm")));
        set_guest_command(vm, &["sh", "-c", "exit 3"]).unwrap();
        let args = strs(&vm["args"]);
        assert_eq!(args[args.len() - 4..], ["--", "sh", "-c", "exit 3"]);
        assert!(pod["spec"]["volumes"]
            .as_sequence()
            .unwrap()
            .iter()
            .any(|v| v["hostPath"]["type"].as_str() == Some("CharDevice")));
        // Without /dev/kvm on the host the resource is dropped and nothing is mapped.
        let pod = for_podman(&text, &Adapt { kvm: false, ..a }).unwrap();
        let out = serde_yaml::to_string(&pod).unwrap();
        assert!(
            !out.contains("/dev/kvm") && !out.contains(KVM_RESOURCE),
            "{out}"
        );
    }
}
