//! Kubernetes' CEL semver library (`k8s.io/apiserver/pkg/cel/library/semverlib.go`), for the `cel` crate.
//!
//! Declared on an [`Env`]:
//!
//! | CEL | Result |
//! |---|---|
//! | `semver(string)`, `semver(string, bool normalize)` | `kubernetes.Semver`, an error if the string isn't a version |
//! | `isSemver(string)`, `isSemver(string, bool normalize)` | `bool` |
//! | `<Semver>.major()`, `.minor()`, `.patch()` | `int` |
//! | `<Semver>.isGreaterThan(Semver)`, `.isLessThan(Semver)` | `bool` |
//! | `<Semver>.compareTo(Semver)` | `int`: -1, 0 or 1 |
//!
//! Without `normalize` (or with `false`) the string must be a SemVer 2.0.0
//! version as written: `1.2.3`, `1.2.3-rc.1+build.5`, but not `v1.2.3` nor
//! `1.2`. With `normalize = true`, as Kubernetes does, a leading `v` is
//! dropped, a missing minor or patch is taken as `0` and leading zeros of the
//! numeric parts are dropped, so `v1` is `1.0.0` and `01.02.03` is `1.2.3`.
//!
//! Versions compare by SemVer precedence: build metadata is ignored, so
//! `1.0.0+a` and `1.0.0+b` are equal.

use cel::common::types::{CelBool, CelInt, CelString, Type, BOOL_TYPE, STRING_TYPE};
use cel::common::value::{CowVal, StaticVal, Val};
use cel::{DeclarationError, Env, ExecutionError};
use std::any::Any;
use std::cmp::Ordering;

/// The CEL type of the values `semver()` returns: the name Kubernetes gives it.
pub static SEMVER_TYPE: Type = Type::new_unspecified_type("kubernetes.Semver");

/// A parsed semantic version, as a CEL value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Semver(pub semver::Version);

impl Val for Semver {
    fn get_type(&self) -> &Type {
        &SEMVER_TYPE
    }

    fn cel_type() -> &'static Type {
        &SEMVER_TYPE
    }

    // Kubernetes' `Semver.Equal` is `Compare == 0`: build metadata doesn't count.
    fn equals(&self, other: &dyn Val) -> bool {
        other
            .downcast_ref::<Semver>()
            .is_some_and(|other| self.0.cmp_precedence(&other.0) == Ordering::Equal)
    }

    fn clone_as_boxed<'v>(&self) -> Box<dyn Val + 'v> {
        Box::new(self.clone())
    }

    fn as_any(&self) -> Option<&dyn Any> {
        Some(self)
    }
}

impl StaticVal for Semver {}

/// Why a string is not a semantic version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SemverError {
    /// The string as given.
    pub input: String,
    /// The parser's reason.
    pub reason: String,
}

impl std::fmt::Display for SemverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "invalid semantic version '{}': {}",
            self.input, self.reason
        )
    }
}

impl std::error::Error for SemverError {}

/// Parses `input` as `semver(input, normalize)` does.
///
/// # Errors
///
/// When `input` is not a SemVer 2.0.0 version, after normalization if asked for.
pub fn parse(input: &str, normalize: bool) -> Result<semver::Version, SemverError> {
    let error = |reason: String| SemverError {
        input: input.to_owned(),
        reason,
    };
    if normalize {
        let normalized = normalize_version(input).map_err(|reason| error(reason.to_owned()))?;
        semver::Version::parse(&normalized).map_err(|e| error(e.to_string()))
    } else {
        semver::Version::parse(input).map_err(|e| error(e.to_string()))
    }
}

/// Kubernetes' `normalizeAndParse`, before the parse: based on blang's
/// `ParseTolerant` but without its whitespace trimming, so that a behaviour of
/// that library can't change what a saved expression selects.
fn normalize_version(input: &str) -> Result<String, &'static str> {
    let s = input.strip_prefix('v').unwrap_or(input);
    // major, minor, and the rest (patch with prerelease and build metadata)
    let mut parts: Vec<String> = s.splitn(3, '.').map(str::to_owned).collect();
    for part in &mut parts {
        if part.len() > 1 {
            let trimmed = part.trim_start_matches('0');
            // "00" and "0-rc" keep one zero, as Kubernetes does
            *part = if trimmed.starts_with(|c: char| c.is_ascii_digit()) {
                trimmed.to_owned()
            } else {
                format!("0{trimmed}")
            };
        }
    }
    if parts.len() < 3 {
        if parts.last().is_some_and(|last| last.contains(['+', '-'])) {
            return Err("short version cannot contain PreRelease/Build meta data");
        }
        while parts.len() < 3 {
            parts.push("0".to_owned());
        }
    }
    Ok(parts.join("."))
}

fn arg<'a, T: StaticValOrString<'a>>(
    args: &'a [CowVal<'_, '_>],
    index: usize,
    function: &str,
) -> Result<&'a T, ExecutionError> {
    let value = args
        .get(index)
        .ok_or_else(|| ExecutionError::invalid_argument_count(index + 1, args.len()))?;
    T::get(value).ok_or_else(|| {
        ExecutionError::no_such_overload(
            function,
            args.iter()
                .map(|a| a.get_type().name().to_owned())
                .collect(),
        )
    })
}

/// The argument types the overloads below downcast to.
trait StaticValOrString<'a>: Sized {
    fn get(value: &'a CowVal<'_, '_>) -> Option<&'a Self>;
}

impl<'a> StaticValOrString<'a> for Semver {
    fn get(value: &'a CowVal<'_, '_>) -> Option<&'a Self> {
        value.downcast_ref::<Semver>()
    }
}

impl<'a> StaticValOrString<'a> for CelBool {
    fn get(value: &'a CowVal<'_, '_>) -> Option<&'a Self> {
        value.downcast_ref::<CelBool>()
    }
}

/// A string argument, borrowed as a `str`.
fn str_arg<'a>(
    args: &'a [CowVal<'_, '_>],
    index: usize,
    function: &str,
) -> Result<&'a str, ExecutionError> {
    let value = args
        .get(index)
        .ok_or_else(|| ExecutionError::invalid_argument_count(index + 1, args.len()))?;
    value
        .downcast_ref::<CelString>()
        .map(|s| s.inner())
        .ok_or_else(|| {
            ExecutionError::no_such_overload(
                function,
                args.iter()
                    .map(|a| a.get_type().name().to_owned())
                    .collect(),
            )
        })
}

fn to_semver<'b, 'v>(input: &str, normalize: bool) -> Result<CowVal<'b, 'v>, ExecutionError> {
    parse(input, normalize)
        .map(|v| CowVal::owned(Semver(v)))
        .map_err(|e| ExecutionError::function_error("semver", e))
}

fn semver_strict<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    to_semver(str_arg(&args, 0, "semver")?, false)
}

fn semver_normalize<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let normalize = *arg::<CelBool>(&args, 1, "semver")?.inner();
    to_semver(str_arg(&args, 0, "semver")?, normalize)
}

fn is_semver_strict<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let valid = parse(str_arg(&args, 0, "isSemver")?, false).is_ok();
    Ok(CowVal::owned(CelBool::from(valid)))
}

fn is_semver_normalize<'b, 'v>(
    args: Vec<CowVal<'b, 'v>>,
) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let normalize = *arg::<CelBool>(&args, 1, "isSemver")?.inner();
    let valid = parse(str_arg(&args, 0, "isSemver")?, normalize).is_ok();
    Ok(CowVal::owned(CelBool::from(valid)))
}

/// A version number as a CEL `int`: a number beyond `i64::MAX` is an error
/// rather than the wrapped negative number Kubernetes would return.
fn component(function: &str, n: u64) -> Result<CelInt, ExecutionError> {
    i64::try_from(n)
        .map(CelInt::from)
        .map_err(|_| ExecutionError::function_error(function, format!("{n} overflows int")))
}

fn major<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let v = arg::<Semver>(&args, 0, "major")?;
    Ok(CowVal::owned(component("major", v.0.major)?))
}

fn minor<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let v = arg::<Semver>(&args, 0, "minor")?;
    Ok(CowVal::owned(component("minor", v.0.minor)?))
}

fn patch<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let v = arg::<Semver>(&args, 0, "patch")?;
    Ok(CowVal::owned(component("patch", v.0.patch)?))
}

fn compare(args: &[CowVal<'_, '_>], function: &str) -> Result<Ordering, ExecutionError> {
    let this = arg::<Semver>(args, 0, function)?;
    let other = arg::<Semver>(args, 1, function)?;
    Ok(this.0.cmp_precedence(&other.0))
}

fn is_greater_than<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let ordering = compare(&args, "isGreaterThan")?;
    Ok(CowVal::owned(CelBool::from(ordering == Ordering::Greater)))
}

fn is_less_than<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let ordering = compare(&args, "isLessThan")?;
    Ok(CowVal::owned(CelBool::from(ordering == Ordering::Less)))
}

fn compare_to<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let n: i64 = match compare(&args, "compareTo")? {
        Ordering::Less => -1,
        Ordering::Equal => 0,
        Ordering::Greater => 1,
    };
    Ok(CowVal::owned(CelInt::from(n)))
}

/// Declares the library's type and functions on `env`.
///
/// # Errors
///
/// When `env` already declares one of them.
pub fn register(env: &mut Env) -> Result<(), DeclarationError> {
    env.add_type(SEMVER_TYPE.to_owned())?;
    env.add_overload(
        "semver",
        "string_to_semver",
        vec![STRING_TYPE],
        semver_strict,
    )?;
    env.add_overload(
        "semver",
        "string_bool_to_semver",
        vec![STRING_TYPE, BOOL_TYPE],
        semver_normalize,
    )?;
    env.add_overload(
        "isSemver",
        "is_semver_string",
        vec![STRING_TYPE],
        is_semver_strict,
    )?;
    env.add_overload(
        "isSemver",
        "is_semver_string_bool",
        vec![STRING_TYPE, BOOL_TYPE],
        is_semver_normalize,
    )?;
    let semver = || SEMVER_TYPE.to_owned();
    env.add_member_overload("major", "semver_major", semver(), vec![], major)?;
    env.add_member_overload("minor", "semver_minor", semver(), vec![], minor)?;
    env.add_member_overload("patch", "semver_patch", semver(), vec![], patch)?;
    env.add_member_overload(
        "isGreaterThan",
        "semver_is_greater_than",
        semver(),
        vec![semver()],
        is_greater_than,
    )?;
    env.add_member_overload(
        "isLessThan",
        "semver_is_less_than",
        semver(),
        vec![semver()],
        is_less_than,
    )?;
    env.add_member_overload(
        "compareTo",
        "semver_compare_to",
        semver(),
        vec![semver()],
        compare_to,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> semver::Version {
        semver::Version::parse(s).unwrap()
    }

    #[test]
    fn normalize_pads_strips_v_and_leading_zeros() {
        assert_eq!(parse("v1", true).unwrap(), v("1.0.0"));
        assert_eq!(parse("1.2", true).unwrap(), v("1.2.0"));
        assert_eq!(parse("v1.2", true).unwrap(), v("1.2.0"));
        assert_eq!(parse("01.02.03", true).unwrap(), v("1.2.3"));
        assert_eq!(parse("v1.2.3", true).unwrap(), v("1.2.3"));
        assert_eq!(parse("1.0.00", true).unwrap(), v("1.0.0"));
        assert_eq!(parse("1.0.00-rc", true).unwrap(), v("1.0.0-rc"));
        let full = parse("v1.2.3-rc.1+build", true).unwrap();
        assert_eq!(full, v("1.2.3-rc.1+build"));
        assert_eq!(full.pre.as_str(), "rc.1");
        assert_eq!(full.build.as_str(), "build");
    }

    #[test]
    fn normalize_still_rejects_what_is_not_a_version() {
        for input in [
            "latest", "", "v", "1.2-rc", "1+b", "1.2.3.4", "v1.x", " 1.2.3",
        ] {
            assert!(parse(input, true).is_err(), "{input:?} should be rejected");
        }
    }

    #[test]
    fn strict_parsing_is_semver_2() {
        assert_eq!(parse("1.2.3", false).unwrap(), v("1.2.3"));
        assert_eq!(
            parse("1.2.3-rc.1+b.01", false).unwrap(),
            v("1.2.3-rc.1+b.01")
        );
        for input in [
            "v1.2.3", "1.2", "1", "01.2.3", "1.02.3", "1.2.03", "1.2.3-01", "1.2.3-", "1.2.3+",
            " 1.2.3", "1.2.3 ", "latest", "",
        ] {
            assert!(parse(input, false).is_err(), "{input:?} should be rejected");
        }
    }

    #[test]
    fn the_error_names_the_input() {
        let error = parse("latest", false).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("invalid semantic version 'latest'"),
            "{error}"
        );
        let error = parse("1.2-rc", true).unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid semantic version '1.2-rc': short version cannot contain PreRelease/Build meta data"
        );
    }

    #[test]
    fn equality_ignores_build_metadata() {
        let a = Semver(v("1.0.0+a"));
        let b = Semver(v("1.0.0+b"));
        let c = Semver(v("1.0.1"));
        assert!(a.equals(&b));
        assert!(!a.equals(&c));
        assert!(!a.equals(&CelInt::from(1)));
    }
}
