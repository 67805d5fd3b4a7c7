//! Which tags of a repository to scan: CEL match conditions over the variable `tag`.
//!
//! A registry's repository lists `match_conditions`, each a CEL expression that returns a
//! bool for one tag, joined by a `match_operator` (`and`, the default, or `or`). Expressions
//! are compiled and checked once, when the registry is saved ([`TagFilter::compile`]), and
//! evaluated per listed tag before any manifest is fetched ([`TagFilter::matches`]).
//!
//! The language is CEL's standard library (`tag.endsWith('-prod')`, `tag.matches('^v[0-9]+$')`,
//! `size(tag) < 20`, ...) plus Kubernetes' semver library ([`semver`]). Cost is bounded without
//! a cost counter, by what a program may contain: at most [`MAX_EXPRESSION_BYTES`] of source,
//! no comprehension macros (`all`, `exists`, `map`, `filter`: over one string they can only
//! multiply work), only the functions of [`ALLOWED_FUNCTIONS`], and tags of at most
//! [`MAX_TAG_BYTES`] (the distribution spec's limit). `matches` uses the `regex` crate, whose
//! matching is linear in the input.
//!
//! CEL as implemented by the `cel` crate has no static type checker, so [`TagFilter::compile`]
//! checks types the way they show: it evaluates the program on a fixed set of probe tags and
//! refuses one that returns anything but a bool, or that applies a function to a type it
//! doesn't take. Errors that depend on the tag's value (`semver('latest')`) are not type
//! errors: at evaluation they deselect the tag and are counted.

pub mod semver;

use cel::objects::Value;
use cel::{Context, Env, ExecutionError, Program};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::sync::Arc;

/// The longest expression accepted, in bytes.
pub const MAX_EXPRESSION_BYTES: usize = 1024;
/// The most conditions one repository may list.
pub const MAX_CONDITIONS: usize = 16;
/// The longest condition name, in bytes.
pub const MAX_NAME_BYTES: usize = 63;
/// The longest tag the distribution spec allows (`[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`).
pub const MAX_TAG_BYTES: usize = 128;

/// The functions and operators a condition may call; anything else is refused when the
/// registry is saved, so that what runs per tag is known and cheap.
pub const ALLOWED_FUNCTIONS: &[&str] = &[
    // operators
    "_==_",
    "_!=_",
    "_<_",
    "_<=_",
    "_>_",
    "_>=_",
    "_&&_",
    "_||_",
    "!_",
    "-_",
    "_?_:_",
    "_+_",
    "_-_",
    "_*_",
    "_/_",
    "_%_",
    "_[_]",
    "@in",
    "@not_strictly_false",
    // strings and conversions
    "size",
    "startsWith",
    "endsWith",
    "contains",
    "matches",
    "string",
    "int",
    "uint",
    "double",
    "bool",
    // Kubernetes' semver library
    "semver",
    "isSemver",
    "major",
    "minor",
    "patch",
    "isGreaterThan",
    "isLessThan",
    "compareTo",
];

/// Tags every program is evaluated on when compiled, to find type errors: a release, a
/// pre-release, a `v`-prefixed and a short version, a moving tag, a digest-like tag.
const PROBE_TAGS: &[&str] = &[
    "latest",
    "1.2.3",
    "v1.2.3",
    "1.2.3-rc.1",
    "v1",
    "main-3f2a9c1",
    "sha256-0123456789abcdef",
    "_",
];

/// One named condition over `tag`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchCondition {
    pub name: String,
    pub expression: String,
}

/// How a repository's conditions combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MatchOperator {
    /// Every condition selects the tag.
    #[default]
    And,
    /// At least one condition selects the tag.
    Or,
}

/// Which part of a condition a [`CompileError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConditionField {
    Name,
    Expression,
}

impl ConditionField {
    /// The field's name in the API.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionField::Name => "name",
            ConditionField::Expression => "expression",
        }
    }
}

/// Why a list of conditions was refused. `condition` is the index of the offending condition;
/// `None` when the list itself is the problem (too many conditions).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CompileError {
    pub condition: Option<usize>,
    pub field: ConditionField,
    pub message: String,
}

/// Why a condition could not decide on one tag: the tag is not selected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("condition '{condition}': {message}")]
pub struct EvalError {
    /// The condition's name.
    pub condition: String,
    pub message: String,
}

struct Compiled {
    name: String,
    program: Program,
}

/// Compiled match conditions: decides, per tag, whether it is scanned.
pub struct TagFilter {
    env: Arc<Env>,
    conditions: Vec<Compiled>,
    operator: MatchOperator,
}

impl std::fmt::Debug for TagFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TagFilter")
            .field(
                "conditions",
                &self.conditions.iter().map(|c| &c.name).collect::<Vec<_>>(),
            )
            .field("operator", &self.operator)
            .finish()
    }
}

/// The environment programs run in: CEL's standard library, no macros, and semver.
fn environment() -> Result<Env, String> {
    let mut env = Env::default().with_stdlib();
    semver::register(&mut env).map_err(|e| format!("declaring the semver library: {e}"))?;
    Ok(env)
}

/// Errors that show an expression applies something to a type it doesn't take, whatever the
/// tag's value: the type errors a checker would have reported.
fn is_type_error(error: &ExecutionError) -> bool {
    matches!(
        error,
        ExecutionError::NoSuchOverload(_)
            | ExecutionError::UnsupportedTargetType { .. }
            | ExecutionError::NotSupportedAsMethod { .. }
            | ExecutionError::UnexpectedType { .. }
            | ExecutionError::UndeclaredReference(_)
            | ExecutionError::InvalidArgumentCount { .. }
            | ExecutionError::MissingArgumentOrTarget
            | ExecutionError::ValuesNotComparable(..)
            | ExecutionError::UnsupportedBinaryOperator(..)
            | ExecutionError::UnsupportedIndex(..)
            | ExecutionError::NoSuchKey(_)
    )
}

fn type_name(value: &Value) -> String {
    value.type_of().to_string()
}

impl TagFilter {
    /// Compiles and checks `conditions`. An empty list selects every tag.
    ///
    /// # Errors
    ///
    /// The first problem found, naming the condition and the field: an empty or duplicate
    /// name, an expression that is empty, too long, doesn't parse, names a variable other than
    /// `tag` or a function not in [`ALLOWED_FUNCTIONS`], or doesn't return a bool.
    pub fn compile(
        conditions: &[MatchCondition],
        operator: MatchOperator,
    ) -> Result<TagFilter, CompileError> {
        if conditions.len() > MAX_CONDITIONS {
            return Err(CompileError {
                condition: None,
                field: ConditionField::Expression,
                message: format!(
                    "{} conditions; at most {MAX_CONDITIONS} are allowed",
                    conditions.len()
                ),
            });
        }
        let env = Arc::new(environment().map_err(|message| CompileError {
            condition: None,
            field: ConditionField::Expression,
            message,
        })?);
        let mut names = BTreeSet::new();
        let mut compiled = Vec::with_capacity(conditions.len());
        for (index, condition) in conditions.iter().enumerate() {
            let fail = |field, message: String| CompileError {
                condition: Some(index),
                field,
                message,
            };
            let name = condition.name.trim();
            if name.is_empty() {
                return Err(fail(ConditionField::Name, "must not be empty".into()));
            }
            if name.len() > MAX_NAME_BYTES {
                return Err(fail(
                    ConditionField::Name,
                    format!("{} bytes; at most {MAX_NAME_BYTES}", name.len()),
                ));
            }
            if !names.insert(name.to_owned()) {
                return Err(fail(
                    ConditionField::Name,
                    format!("'{name}' is used by another condition"),
                ));
            }
            let program = compile_expression(&env, &condition.expression)
                .map_err(|message| fail(ConditionField::Expression, message))?;
            compiled.push(Compiled {
                name: name.to_owned(),
                program,
            });
        }
        Ok(TagFilter {
            env,
            conditions: compiled,
            operator,
        })
    }

    /// Whether `tag` is selected.
    ///
    /// Conditions are evaluated in order and stop as soon as the result is known (the first
    /// false for `and`, the first true for `or`).
    ///
    /// # Errors
    ///
    /// When a condition that had to be evaluated fails on this tag (`semver(tag)` of
    /// `latest`), or the tag is longer than [`MAX_TAG_BYTES`]: the tag is then not selected.
    pub fn matches(&self, tag: &str) -> Result<bool, EvalError> {
        if tag.len() > MAX_TAG_BYTES {
            return Err(EvalError {
                condition: self
                    .conditions
                    .first()
                    .map(|c| c.name.clone())
                    .unwrap_or_default(),
                message: format!("tag of {} bytes; at most {MAX_TAG_BYTES}", tag.len()),
            });
        }
        for condition in &self.conditions {
            let selected =
                evaluate(&self.env, &condition.program, tag).map_err(|message| EvalError {
                    condition: condition.name.clone(),
                    message,
                })?;
            match (self.operator, selected) {
                (MatchOperator::And, false) => return Ok(false),
                (MatchOperator::Or, true) => return Ok(true),
                _ => {}
            }
        }
        // `and` of all true (or of none), `or` of all false (or of none: no conditions
        // means every tag).
        Ok(self.operator == MatchOperator::And || self.conditions.is_empty())
    }

    /// How many conditions were compiled.
    #[must_use]
    pub fn len(&self) -> usize {
        self.conditions.len()
    }

    /// Whether there are no conditions (every tag is selected).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.conditions.is_empty()
    }
}

fn compile_expression(env: &Arc<Env>, expression: &str) -> Result<Program, String> {
    if expression.trim().is_empty() {
        return Err("must not be empty".into());
    }
    if expression.len() > MAX_EXPRESSION_BYTES {
        return Err(format!(
            "{} bytes; at most {MAX_EXPRESSION_BYTES}",
            expression.len()
        ));
    }
    let program = env
        .compile(expression)
        .map_err(|e| format!("does not parse: {}", one_line(&e.to_string())))?;
    let references = program.references();
    let mut functions = references.functions();
    functions.sort_unstable();
    if let Some(function) = functions.iter().find(|f| !ALLOWED_FUNCTIONS.contains(f)) {
        let hint = if ["all", "exists", "exists_one", "map", "filter", "has"].contains(function) {
            " (comprehensions are not available: a condition sees one tag)"
        } else {
            ""
        };
        return Err(format!("function '{function}' is not available{hint}"));
    }
    let mut variables = references.variables();
    variables.sort_unstable();
    if let Some(variable) = variables.iter().find(|v| **v != "tag") {
        return Err(format!(
            "undeclared reference '{variable}': the only variable is `tag`"
        ));
    }
    for probe in PROBE_TAGS {
        match run(env, &program, probe) {
            Ok(Value::Bool(_)) => {}
            Ok(other) => {
                return Err(format!(
                    "must return a bool, returns {} (for tag '{probe}')",
                    type_name(&other)
                ))
            }
            Err(error) if is_type_error(&error) => {
                return Err(format!(
                    "type error: {} (for tag '{probe}')",
                    one_line(&error.to_string())
                ))
            }
            // A failure that depends on the tag's value, like semver('latest').
            Err(_) => {}
        }
    }
    Ok(program)
}

fn run(env: &Arc<Env>, program: &Program, tag: &str) -> Result<Value, ExecutionError> {
    let mut context = Context::with_env(env.clone());
    context.add_variable_from_value("tag", Value::String(Arc::new(tag.to_owned())));
    program.execute(&context)
}

fn evaluate(env: &Arc<Env>, program: &Program, tag: &str) -> Result<bool, String> {
    match run(env, program, tag) {
        Ok(Value::Bool(selected)) => Ok(selected),
        Ok(other) => Err(format!("returned {} instead of a bool", type_name(&other))),
        Err(error) => Err(one_line(&error.to_string())),
    }
}

/// Parser and regex errors span lines (a caret under the source); an API error and a
/// discovery's summary hold one.
fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests;
