//! ECR lifecycle policies: the examples of the Amazon ECR User Guide,
//! "Examples of lifecycle policies"
//! (<https://docs.aws.amazon.com/AmazonECR/latest/userguide/lifecycle_policy_examples.html>;
//! the same images and results with `tagPrefixList` in the archived
//! `awsdocs/amazon-ecr-user-guide`, `doc_source/lifecycle_policy_examples.md`),
//! and the validation rules of "Lifecycle policy properties"
//! (`lifecycle_policy_parameters.html`).

use super::*;
use crate::policy::formats::ecr::Lifecycle;
use crate::policy::formats::Vendor;

fn ecr(json: &str) -> Vendor {
    Vendor::Ecr(Lifecycle::parse(json, true, "lifecycle.json").unwrap_or_else(|e| panic!("{e}")))
}

fn rule(priority: u32, selection: &str) -> String {
    format!(
        r#"{{"rulePriority":{priority},"description":"Rule {priority}","selection":{{{selection}}},"action":{{"type":"expire"}}}}"#
    )
}

fn policy(rules: &[String]) -> String {
    format!(r#"{{"rules":[{}]}}"#, rules.join(","))
}

fn more_than(list: &str, tags: &str, n: u32) -> String {
    format!(
        r#""tagStatus":"tagged","{list}":[{tags}],"countType":"imageCountMoreThan","countNumber":{n}"#
    )
}

/// Both spellings of a tag list the guide uses: the archived guide's
/// prefixes and the current guide's patterns.
const LISTS: [(&str, &str); 2] = [("tagPrefixList", ""), ("tagPatternList", "*")];

fn quoted(list: &[&str], suffix: &str) -> String {
    list.iter()
        .map(|t| format!("\"{t}{suffix}\""))
        .collect::<Vec<_>>()
        .join(",")
}

/// The repository of the "Filtering on multiple rules" examples.
fn multiple_rules_repo() -> Repo {
    Repo::new("app")
        .at("A", &["beta-1", "prod-1"], 10 * DAY)
        .at("B", &["beta-2", "prod-2"], 9 * DAY)
        .at("C", &["beta-3"], 8 * DAY)
}

/// "Filtering on multiple rules", Example A: rule 1 (prod, keep 1)
/// expires A; rule 2 (beta, keep 1) would expire A and B, "however, Image
/// A has already been seen by Rule 1 and if Image B were expired it would
/// violate Rule 1 and thus is skipped".
#[test]
fn multiple_rules_example_a() {
    let repo = multiple_rules_repo();
    for (list, s) in LISTS {
        let p = policy(&[
            rule(1, &more_than(list, &quoted(&["prod"], s), 1)),
            rule(2, &more_than(list, &quoted(&["beta"], s), 1)),
        ]);
        let d = run(ecr(&p), &[&repo]);
        assert_eq!(gone(&d, &repo), set(&["A"]), "{list}");
        assert_eq!(
            tag_reason(&d, "app", "beta-1"),
            &Reason::Expired {
                by: "ecr rule 1 (imageCountMoreThan 1)".into()
            }
        );
    }
}

/// "Filtering on multiple rules", Example B: the priorities swapped; rule 1
/// (beta, keep 1) expires A and B, rule 2 sees nothing left.
#[test]
fn multiple_rules_example_b() {
    let repo = multiple_rules_repo();
    for (list, s) in LISTS {
        let p = policy(&[
            rule(1, &more_than(list, &quoted(&["beta"], s), 1)),
            rule(2, &more_than(list, &quoted(&["prod"], s), 1)),
        ]);
        let d = run(ecr(&p), &[&repo]);
        assert_eq!(gone(&d, &repo), set(&["A", "B"]), "{list}");
    }
}

/// "Filtering on multiple tags in a single rule", Example A: images must
/// match all the listed tags; of C and F, only C is older than five days.
#[test]
fn multiple_tags_example_a() {
    let repo = Repo::new("app")
        .at("A", &["alpha-1"], 12 * DAY)
        .at("B", &["beta-1"], 11 * DAY)
        .at("C", &["alpha-2", "beta-2"], 10 * DAY)
        .at("D", &["alpha-3"], 4 * DAY)
        .at("E", &["beta-3"], 3 * DAY)
        .at("F", &["alpha-4", "beta-4"], 2 * DAY);
    for (list, s) in LISTS {
        let p = policy(&[rule(
            1,
            &format!(
                r#""tagStatus":"tagged","{list}":[{}],"countType":"sinceImagePushed","countNumber":5,"countUnit":"days""#,
                quoted(&["alpha", "beta"], s)
            ),
        )]);
        let d = run(ecr(&p), &[&repo]);
        assert_eq!(gone(&d, &repo), set(&["C"]), "{list}");
    }
}

/// "Filtering on multiple tags in a single rule", Example B: tags are not
/// exclusive (gamma does not stop A and C from being selected); keep 1 of
/// A, B, C expires A and B.
#[test]
fn multiple_tags_example_b() {
    let repo = Repo::new("app")
        .at("A", &["alpha-1", "beta-1", "gamma-1"], 10 * DAY)
        .at("B", &["alpha-2", "beta-2"], 9 * DAY)
        .at("C", &["alpha-3", "beta-3", "gamma-2"], 8 * DAY);
    for (list, s) in LISTS {
        let p = policy(&[rule(1, &more_than(list, &quoted(&["alpha", "beta"], s), 1))]);
        let d = run(ecr(&p), &[&repo]);
        assert_eq!(gone(&d, &repo), set(&["A", "B"]), "{list}");
    }
}

/// "Filtering on all images", Example A: `any`, keep 1 — every image but
/// the newest expires, the untagged C included.
#[test]
fn all_images_example_a() {
    let repo = Repo::new("app")
        .at("A", &["alpha-1"], 4 * DAY)
        .at("B", &["beta-1"], 3 * DAY)
        .at("C", &[], 2 * DAY)
        .at("D", &["alpha-2"], DAY);
    let p = policy(&[rule(
        1,
        r#""tagStatus":"any","countType":"imageCountMoreThan","countNumber":1"#,
    )]);
    let d = run(ecr(&p), &[&repo]);
    assert_eq!(gone(&d, &repo), set(&["A", "B", "C"]));
}

/// "Filtering on all images", Example B, which combines the rule types:
/// rule 1 expires A, rule 2 B (E is too young), rule 3 would keep the
/// newest and expire the rest but "can't mark images A, B, C, or E because
/// they were identified by higher priority rules" — it expires D. D and E
/// were both "pushed 1 day ago"; E is the newer, both under 24 hours.
#[test]
fn all_images_example_b() {
    let repo = Repo::new("app")
        .at("A", &["alpha-1", "beta-1"], 4 * DAY)
        .at("B", &[], 3 * DAY)
        .at("C", &["alpha-2"], 2 * DAY)
        .at("D", &["git hash"], 23 * HOUR + 50 * MIN)
        .at("E", &[], 23 * HOUR + 40 * MIN);
    for (list, s) in LISTS {
        let p = policy(&[
            rule(1, &more_than(list, &quoted(&["alpha"], s), 1)),
            rule(
                2,
                r#""tagStatus":"untagged","countType":"sinceImagePushed","countUnit":"days","countNumber":1"#,
            ),
            rule(
                3,
                r#""tagStatus":"any","countType":"imageCountMoreThan","countNumber":1"#,
            ),
        ]);
        let d = run(ecr(&p), &[&repo]);
        assert_eq!(gone(&d, &repo), set(&["A", "B", "D"]), "{list}");
        assert_eq!(
            untagged_reason(&d, "app", "B"),
            &Reason::Expired {
                by: "ecr rule 2 (sinceImagePushed 1 days)".into()
            }
        );
        assert_eq!(
            tag_reason(&d, "app", "git hash"),
            &Reason::Expired {
                by: "ecr rule 3 (imageCountMoreThan 1)".into()
            }
        );
        assert!(!tag_reason(&d, "app", "alpha-2").removes());
    }
}

/// "Filtering on image age" (current guide): tagged `prod*` older than 14
/// days; and the archived guide's untagged variant.
#[test]
fn image_age_examples() {
    let repo = Repo::new("app")
        .at("old-prod", &["prod-1"], 15 * DAY)
        .at("new-prod", &["prod-2"], 13 * DAY)
        .at("dev", &["dev"], 30 * DAY)
        .at("old-untagged", &[], 15 * DAY)
        .at("new-untagged", &[], 13 * DAY);
    let tagged = policy(&[rule(
        1,
        r#""tagStatus":"tagged","tagPatternList":["prod*"],"countType":"sinceImagePushed","countUnit":"days","countNumber":14"#,
    )]);
    assert_eq!(
        gone(&run(ecr(&tagged), &[&repo]), &repo),
        set(&["old-prod"])
    );
    let untagged = policy(&[rule(
        1,
        r#""tagStatus":"untagged","countType":"sinceImagePushed","countUnit":"days","countNumber":14"#,
    )]);
    assert_eq!(
        gone(&run(ecr(&untagged), &[&repo]), &repo),
        set(&["old-untagged"])
    );
}

/// "Filtering on image count": keep only one untagged image.
#[test]
fn image_count_example() {
    let repo = Repo::new("app")
        .at("u1", &[], 3 * DAY)
        .at("u2", &[], 2 * DAY)
        .at("u3", &[], DAY)
        .at("t", &["v1"], 5 * DAY);
    let p = policy(&[rule(
        1,
        r#""tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":1"#,
    )]);
    assert_eq!(gone(&run(ecr(&p), &[&repo]), &repo), set(&["u1", "u2"]));
}

/// The archive examples validate, and act on nothing here: a
/// `transition` moves images to another storage class, it removes none.
#[test]
fn archive_examples_validate_and_remove_nothing() {
    let repo = Repo::new("app")
        .at("A", &["prod-1"], 400 * DAY)
        .at("B", &[], 400 * DAY);
    let p = policy(&[
        r#"{"rulePriority":1,"description":"Archive images older than 30 days","selection":{"tagStatus":"any","countType":"sinceImagePushed","countUnit":"days","countNumber":30},"action":{"type":"transition","targetStorageClass":"archive"}}"#.to_string(),
        r#"{"rulePriority":2,"description":"Expire images archived for more than 365 days","selection":{"tagStatus":"any","storageClass":"archive","countType":"sinceImageTransitioned","countUnit":"days","countNumber":365},"action":{"type":"expire"}}"#.to_string(),
    ]);
    assert_eq!(gone(&run(ecr(&p), &[&repo]), &repo), set(&[]));
}

/// "Lifecycle policy properties": what ECR refuses, refused with the rule
/// and the field named.
#[test]
fn invalid_policies_are_refused_naming_rule_and_field() {
    let cases: [(&str, String, &str); 8] = [
        (
            "five wildcards",
            policy(&[rule(
                1,
                &more_than("tagPatternList", r#""test*1*2*3*4*5*6""#, 1),
            )]),
            "tagPatternList",
        ),
        (
            "both lists",
            policy(&[rule(
                1,
                r#""tagStatus":"tagged","tagPrefixList":["a"],"tagPatternList":["a*"],"countType":"imageCountMoreThan","countNumber":1"#,
            )]),
            "selection",
        ),
        (
            "untagged with a list",
            policy(&[rule(
                1,
                r#""tagStatus":"untagged","tagPrefixList":["a"],"countType":"imageCountMoreThan","countNumber":1"#,
            )]),
            "tagPrefixList",
        ),
        (
            "countNumber 0",
            policy(&[rule(1, &more_than("tagPrefixList", r#""a""#, 0))]),
            "countNumber",
        ),
        (
            "countUnit with imageCountMoreThan",
            policy(&[rule(
                1,
                r#""tagStatus":"any","countType":"imageCountMoreThan","countUnit":"days","countNumber":1"#,
            )]),
            "countUnit",
        ),
        (
            "any not last",
            policy(&[
                rule(
                    1,
                    r#""tagStatus":"any","countType":"imageCountMoreThan","countNumber":1"#,
                ),
                rule(2, &more_than("tagPrefixList", r#""a""#, 1)),
            ]),
            "rulePriority",
        ),
        (
            "duplicate priority",
            policy(&[
                rule(1, &more_than("tagPrefixList", r#""a""#, 1)),
                rule(1, &more_than("tagPrefixList", r#""b""#, 1)),
            ]),
            "rulePriority",
        ),
        (
            "sinceImagePulled with expire",
            policy(&[rule(
                1,
                r#""tagStatus":"any","countType":"sinceImagePulled","countUnit":"days","countNumber":90"#,
            )]),
            "countType",
        ),
    ];
    for (what, text, field) in cases {
        let e = Lifecycle::parse(&text, true, "lifecycle.json")
            .err()
            .unwrap_or_else(|| panic!("{what}: accepted"));
        assert_eq!(e.origin, "lifecycle.json", "{what}");
        assert!(e.rule.is_some(), "{what}: {e}");
        assert!(
            e.field.as_deref().is_some_and(|f| f.ends_with(field)),
            "{what}: {e}"
        );
    }
    // Four wildcards per pattern are allowed.
    let ok = policy(&[rule(
        1,
        &more_than("tagPatternList", r#""*test*1*2*3", "test*1*2*3*""#, 1),
    )]);
    Lifecycle::parse(&ok, true, "lifecycle.json").unwrap();
}
