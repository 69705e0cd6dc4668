//! `dialora rouge` end to end: the contract's JSON, and one-line errors for unusable files.

use dialora_tests::{dialora, fixtures, run};
use serde_json::Value;

fn write(dir: &std::path::Path, name: &str, content: &[u8]) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path
}

#[test]
fn scores_files_as_rouge_score_does() {
    let fixture: Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("rouge.json")).unwrap())
            .unwrap();
    // Single-line pairs only: a file holds one text per line.
    let pairs: Vec<&Value> = fixture["pairs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| {
            !p["reference"].as_str().unwrap().contains('\n')
                && !p["prediction"].as_str().unwrap().contains('\n')
        })
        .take(200)
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let join = |key: &str| {
        pairs
            .iter()
            .map(|p| p[key].as_str().unwrap())
            .collect::<Vec<_>>()
            .join("\n")
            + "\n"
    };
    let predictions = write(dir.path(), "pred.txt", join("prediction").as_bytes());
    let references = write(
        dir.path(),
        "ref.txt",
        join("reference").replace('\n', "\r\n").as_bytes(),
    );
    let out = run(dialora(dir.path())
        .args(["rouge", "--stemmer", "--json", "--predictions"])
        .arg(&predictions)
        .arg("--references")
        .arg(&references))
    .success();
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["count"], pairs.len());
    let per_example = report["per_example"].as_array().unwrap();
    for (i, name) in ["rouge1", "rouge2", "rougeL", "rougeLsum"]
        .iter()
        .enumerate()
    {
        let mut sum = 0.0;
        for (pair, ours) in pairs.iter().zip(per_example) {
            let expected = pair["stemmed"][i][2].as_f64().unwrap();
            let got = ours[name]["fmeasure"].as_f64().unwrap();
            assert!((got - expected).abs() < 1e-6, "{name}: {got} vs {expected}");
            sum += expected;
        }
        let mean = report[name]["fmeasure"].as_f64().unwrap();
        assert!(
            (mean - sum / pairs.len() as f64).abs() < 1e-6,
            "{name} mean"
        );
    }
}

#[test]
fn unusable_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let two = write(dir.path(), "two.txt", b"a\nb\n");
    let three = write(dir.path(), "three.txt", b"a\nb\nc\n");
    let empty = write(dir.path(), "empty.txt", b"");
    let binary = write(dir.path(), "binary.txt", b"ok\n\xff\xfe\x00junk\n");
    let rouge = |p: &std::path::Path, r: &std::path::Path| {
        run(dialora(dir.path())
            .args(["rouge", "--predictions"])
            .arg(p)
            .arg("--references")
            .arg(r))
    };
    rouge(&two, &three).clear_error(&["two.txt", "2 lines", "three.txt", "3"]);
    rouge(&empty, &two).clear_error(&["empty.txt", "empty"]);
    rouge(&two, &binary).clear_error(&["binary.txt:2", "binary file"]);
    rouge(&dir.path().join("missing.txt"), &two).clear_error(&["missing.txt"]);
}
