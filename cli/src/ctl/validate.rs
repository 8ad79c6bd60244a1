//! `avocetctl validate -f FILE`: one `ok Kind/name` line per valid document, every error on stderr.

use std::io::Write;
use std::process::ExitCode;

use super::{ValidateArgs, read_input, report_invalid};

pub(super) fn run(
    args: &ValidateArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    let text = read_input(&args.file)?;
    let valid = check(&text, &args.file.display().to_string(), out, err)?;
    Ok(if valid { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Validates every document of `text`; returns whether all of them are valid.
fn check(
    text: &str,
    source: &str,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> std::io::Result<bool> {
    let documents = match avocet_types::parse_documents(text) {
        Ok(documents) => documents,
        Err(error) => {
            writeln!(err, "error: {source}: {error}")?;
            return Ok(false);
        }
    };
    if documents.is_empty() {
        writeln!(err, "error: {source}: holds no documents")?;
        return Ok(false);
    }
    let mut valid = true;
    for document in &documents {
        match document {
            Ok(document) => {
                for warning in &document.warnings {
                    let object = &document.object;
                    writeln!(
                        err,
                        "warning: {}/{} (document {}): {warning}",
                        object.kind(),
                        object.name(),
                        document.index
                    )?;
                }
                writeln!(out, "ok {}/{}", document.object.kind(), document.object.name())?;
            }
            Err(error) => {
                valid = false;
                report_invalid(error, err)?;
            }
        }
    }
    Ok(valid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validate(text: &str) -> (bool, String, String) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let valid = check(text, "policy.yaml", &mut out, &mut err).unwrap();
        (valid, String::from_utf8(out).unwrap(), String::from_utf8(err).unwrap())
    }

    #[test]
    fn prints_ok_per_valid_document_and_every_error_of_the_rest() {
        let (valid, out, err) = validate(
            "apiVersion: stork.libopenstorage.org/v1alpha1\nkind: SchedulePolicy\nmetadata: {name: a}\n\
             policy: {interval: {intervalMinutes: 5}}\n---\n\
             apiVersion: stork.libopenstorage.org/v1alpha1\nkind: SchedulePolicy\nmetadata: {name: b}\n\
             policy: {daily: {time: \"25:61PM\"}, monthly: {date: 0, time: \"1:00am\"}}\n",
        );
        assert!(!valid);
        assert_eq!(out, "ok SchedulePolicy/a\n");
        assert_eq!(
            err,
            "error: SchedulePolicy/b (document 2): policy.daily.time: \"25:61PM\" is not a time like 10:14PM\n\
             error: SchedulePolicy/b (document 2): policy.monthly.date: 0 is not a day of the month (1 to 31)\n"
        );
    }

    #[test]
    fn malformed_and_empty_files_are_errors() {
        let (valid, out, err) = validate("policy: [unclosed");
        assert!(!valid);
        assert!(out.is_empty());
        assert!(err.starts_with("error: policy.yaml: not valid YAML or JSON: "), "{err}");
        let (valid, _, err) = validate("# nothing here\n");
        assert!(!valid);
        assert_eq!(err, "error: policy.yaml: holds no documents\n");
    }
}
