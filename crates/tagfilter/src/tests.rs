//! The issue's examples, the errors a saved registry reports, and properties over any input.

use super::*;
use proptest::prelude::*;

fn condition(name: &str, expression: &str) -> MatchCondition {
    MatchCondition {
        name: name.into(),
        expression: expression.into(),
    }
}

fn filter(expressions: &[&str], operator: MatchOperator) -> TagFilter {
    let conditions: Vec<_> = expressions
        .iter()
        .enumerate()
        .map(|(i, e)| condition(&format!("c{i}"), e))
        .collect();
    TagFilter::compile(&conditions, operator).unwrap()
}

fn selected(filter: &TagFilter, tags: &[&str]) -> Vec<String> {
    tags.iter()
        .filter(|t| filter.matches(t).unwrap_or(false))
        .map(|t| (*t).to_owned())
        .collect()
}

const TAGS: &[&str] = &[
    "latest",
    "v1.11.0",
    "v1.12.0",
    "v1.12.1",
    "v1.13.0-rc1",
    "v2.0.0",
    "1.2.0-prod",
    "web-prod",
    "v1.12.1-rc2",
];

#[test]
fn the_issues_examples_select_what_they_say() {
    let f = filter(&["tag.endsWith('-prod')"], MatchOperator::And);
    assert_eq!(selected(&f, TAGS), ["1.2.0-prod", "web-prod"]);

    let f = filter(&["!tag.matches('^.*-rc[0-9]*$')"], MatchOperator::And);
    assert_eq!(
        selected(&f, TAGS),
        [
            "latest",
            "v1.11.0",
            "v1.12.0",
            "v1.12.1",
            "v2.0.0",
            "1.2.0-prod",
            "web-prod"
        ]
    );

    let f = filter(
        &["semver(tag, true).isGreaterThan(semver('v1.12.0', true))"],
        MatchOperator::And,
    );
    // v1.13.0-rc1 and v1.12.1-rc2 are pre-releases of versions above 1.12.0: greater.
    assert_eq!(
        selected(&f, TAGS),
        ["v1.12.1", "v1.13.0-rc1", "v2.0.0", "v1.12.1-rc2"]
    );

    let f = filter(&["tag == 'latest'"], MatchOperator::And);
    assert_eq!(selected(&f, TAGS), ["latest"]);
}

#[test]
fn and_requires_every_condition_or_any() {
    let both = ["tag.startsWith('v1.')", "!tag.contains('-rc')"];
    let f = filter(&both, MatchOperator::And);
    assert_eq!(selected(&f, TAGS), ["v1.11.0", "v1.12.0", "v1.12.1"]);
    let f = filter(&both, MatchOperator::Or);
    assert_eq!(
        selected(&f, TAGS),
        [
            "latest",
            "v1.11.0",
            "v1.12.0",
            "v1.12.1",
            "v1.13.0-rc1",
            "v2.0.0",
            "1.2.0-prod",
            "web-prod",
            "v1.12.1-rc2"
        ]
    );
}

#[test]
fn no_conditions_select_every_tag_with_either_operator() {
    for operator in [MatchOperator::And, MatchOperator::Or] {
        let f = TagFilter::compile(&[], operator).unwrap();
        assert!(f.is_empty());
        assert_eq!(selected(&f, TAGS).len(), TAGS.len());
    }
}

#[test]
fn a_condition_failing_on_a_tag_deselects_it_with_the_reason() {
    let f = filter(&["semver(tag).major() >= 1"], MatchOperator::And);
    assert_eq!(f.matches("1.2.3"), Ok(true));
    assert_eq!(f.matches("0.2.3"), Ok(false));
    let error = f.matches("latest").unwrap_err();
    assert_eq!(error.condition, "c0");
    assert!(
        error.message.contains("invalid semantic version 'latest'"),
        "{error}"
    );
    // `or` short-circuits: a condition that would fail is not reached once one selects.
    let f = filter(
        &["tag == 'latest'", "semver(tag).major() >= 1"],
        MatchOperator::Or,
    );
    assert_eq!(f.matches("latest"), Ok(true));
    assert!(f.matches("stable").is_err());
    // and CEL's own `||` absorbs errors when the other side is true.
    let f = filter(
        &["tag == 'latest' || semver(tag).major() >= 1"],
        MatchOperator::And,
    );
    assert_eq!(f.matches("latest"), Ok(true));
}

#[test]
fn over_long_tags_are_refused_not_evaluated() {
    let f = filter(&["true"], MatchOperator::And);
    let long = "a".repeat(MAX_TAG_BYTES + 1);
    assert!(f
        .matches(&long)
        .unwrap_err()
        .message
        .contains("at most 128"));
    assert_eq!(f.matches(&"a".repeat(MAX_TAG_BYTES)), Ok(true));
}

fn compile_error(expressions: &[(&str, &str)]) -> CompileError {
    let conditions: Vec<_> = expressions.iter().map(|(n, e)| condition(n, e)).collect();
    match TagFilter::compile(&conditions, MatchOperator::And) {
        Ok(f) => panic!("{expressions:?} compiled: {f:?}"),
        Err(e) => e,
    }
}

/// Conditions (name, expression), then the index, field and message part of the error.
type Case<'a> = (
    &'a [(&'a str, &'a str)],
    Option<usize>,
    ConditionField,
    &'a str,
);

#[test]
fn compile_errors_name_the_condition_the_field_and_the_problem() {
    let cases: &[Case] = &[
        (
            &[("a", "true"), ("b", "tag.endsWith(")],
            Some(1),
            ConditionField::Expression,
            "does not parse",
        ),
        (
            &[("a", "tag.size() + 1")],
            Some(0),
            ConditionField::Expression,
            "must return a bool, returns int",
        ),
        (
            &[("a", "size(tag)")],
            Some(0),
            ConditionField::Expression,
            "must return a bool, returns int",
        ),
        (
            &[("a", "name == 'x'")],
            Some(0),
            ConditionField::Expression,
            "undeclared reference 'name'",
        ),
        (
            &[("a", "tag.major() > 1")],
            Some(0),
            ConditionField::Expression,
            "type error",
        ),
        (
            &[("a", "tag > 1")],
            Some(0),
            ConditionField::Expression,
            "type error",
        ),
        (
            &[("a", "[1, 2].all(x, x > 0)")],
            Some(0),
            ConditionField::Expression,
            "comprehensions are not available",
        ),
        (
            &[("a", "tag.lowerAscii() == 'x'")],
            Some(0),
            ConditionField::Expression,
            "function 'lowerAscii' is not available",
        ),
        (
            &[("a", "timestamp('2020-01-01T00:00:00Z') > now")],
            Some(0),
            ConditionField::Expression,
            "is not available",
        ),
        (
            &[("a", "  ")],
            Some(0),
            ConditionField::Expression,
            "must not be empty",
        ),
        (
            &[("", "true")],
            Some(0),
            ConditionField::Name,
            "must not be empty",
        ),
        (
            &[("a", "true"), ("a", "false")],
            Some(1),
            ConditionField::Name,
            "used by another condition",
        ),
    ];
    for (conditions, index, field, needle) in cases {
        let error = compile_error(conditions);
        assert_eq!(error.condition, *index, "{conditions:?}: {error}");
        assert_eq!(error.field, *field, "{conditions:?}: {error}");
        assert!(error.message.contains(needle), "{conditions:?}: {error}");
        assert!(!error.message.contains('\n'), "one line: {error}");
    }
}

#[test]
fn limits_are_enforced_at_compile() {
    let long = format!("tag == '{}'", "a".repeat(MAX_EXPRESSION_BYTES));
    let error = compile_error(&[("a", &long)]);
    assert!(error.message.contains("at most 1024"), "{error}");
    let many: Vec<_> = (0..=MAX_CONDITIONS)
        .map(|i| condition(&format!("c{i}"), "true"))
        .collect();
    let error = TagFilter::compile(&many, MatchOperator::And).unwrap_err();
    assert_eq!(error.condition, None);
    assert!(error.message.contains("at most 16"), "{error}");
}

#[test]
fn value_dependent_failures_are_not_type_errors() {
    // semver() of "latest" fails, of "1.2.3" doesn't: the expression is well typed.
    for expression in [
        "semver(tag).isLessThan(semver('2.0.0'))",
        "int(tag) > 3",
        "isSemver(tag, true) && semver(tag, true).minor() == 2",
        "semver(tag, true).compareTo(semver('1.2.3')) == 0",
        "tag.matches('^v[0-9]+') && tag in ['v1', 'v2']",
    ] {
        TagFilter::compile(&[condition("a", expression)], MatchOperator::And)
            .unwrap_or_else(|e| panic!("{expression}: {e}"));
    }
}

#[test]
fn operator_and_condition_serde_is_the_apis() {
    let op: MatchOperator = serde_json::from_str("\"or\"").unwrap();
    assert_eq!(op, MatchOperator::Or);
    assert!(serde_json::from_str::<MatchOperator>("\"xor\"").is_err());
    let c: MatchCondition =
        serde_json::from_str(r#"{"name":"prod","expression":"tag.endsWith('-prod')"}"#).unwrap();
    assert_eq!(c, condition("prod", "tag.endsWith('-prod')"));
    assert!(
        serde_json::from_str::<MatchCondition>(r#"{"name":"a","expression":"x","y":1}"#).is_err()
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever a user saves, compiling it never panics, and whatever compiles never panics on
    /// any tag: it answers or errors.
    #[test]
    fn any_expression_compiles_or_errors_and_never_panics(
        expression in "[a-z()'.!=<>&|\\[\\]0-9, ?:+-]{0,60}",
        tag in "[a-zA-Z0-9_.-]{0,40}",
    ) {
        if let Ok(f) = TagFilter::compile(&[condition("p", &expression)], MatchOperator::And) {
            let _ = f.matches(&tag);
        }
    }

    /// `isGreaterThan`, `isLessThan` and `compareTo` agree with SemVer precedence.
    #[test]
    fn semver_comparisons_agree_with_precedence(
        a in (0u64..4, 0u64..4, 0u64..4, proptest::option::of("(rc|alpha)\\.[0-9]")),
        b in (0u64..4, 0u64..4, 0u64..4, proptest::option::of("(rc|alpha)\\.[0-9]")),
    ) {
        let text = |(x, y, z, pre): &(u64, u64, u64, Option<String>)| match pre {
            Some(pre) => format!("{x}.{y}.{z}-{pre}"),
            None => format!("{x}.{y}.{z}"),
        };
        let (a, b) = (text(&a), text(&b));
        let order = ::semver::Version::parse(&a).unwrap().cmp_precedence(&::semver::Version::parse(&b).unwrap());
        let gt = filter(&[&format!("semver(tag).isGreaterThan(semver('{b}'))")], MatchOperator::And);
        let lt = filter(&[&format!("semver(tag).isLessThan(semver('{b}'))")], MatchOperator::And);
        let eq = filter(&[&format!("semver(tag).compareTo(semver('{b}')) == 0")], MatchOperator::And);
        prop_assert_eq!(gt.matches(&a), Ok(order.is_gt()));
        prop_assert_eq!(lt.matches(&a), Ok(order.is_lt()));
        prop_assert_eq!(eq.matches(&a), Ok(order.is_eq()));
    }

    /// `matches` is the regex crate's unanchored search.
    #[test]
    fn matches_is_an_unanchored_regex_search(tag in "[a-z0-9.-]{0,20}") {
        let f = filter(&["tag.matches('[0-9]+-rc')"], MatchOperator::And);
        let expected = regex::Regex::new("[0-9]+-rc").unwrap().is_match(&tag);
        prop_assert_eq!(f.matches(&tag), Ok(expected));
    }
}
