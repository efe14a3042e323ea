//! Intezer verdicts: how they are grouped, adjusted and scored.

/// The group an Intezer verdict or sub-verdict belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerdictGroup {
    Trusted,
    Malicious,
    Suspicious,
    OfInterest,
    Unknown,
    NotSupported,
    Neutral,
    /// `testing`: the stand-in for Intezer's own verdict when
    /// `use_black_box_verdicts` is off. It raises no heuristic.
    Testing,
    /// A value this service does not know.
    Other,
}

/// The verdict that replaces Intezer's own when `use_black_box_verdicts` is
/// off, so that scoring relies on the service's own rules.
pub const TESTING: &str = "testing";

pub fn group(verdict: &str) -> VerdictGroup {
    match verdict {
        "known_trusted" | "trusted" | "probably_trusted" | "known_library" | "library" => {
            VerdictGroup::Trusted
        }
        "malicious" | "known_malicious" => VerdictGroup::Malicious,
        "administration_tool"
        | "known_administration_tool"
        | "packed"
        | "script"
        | "suspicious" => VerdictGroup::Suspicious,
        "probably_packed" | "interesting" => VerdictGroup::OfInterest,
        "unique" | "no_genes" | "almost_no_genes" | "inconclusive" | "installer" | "no_code"
        | "unknown" => VerdictGroup::Unknown,
        "file_type_not_supported"
        | "not_supported"
        | "non_native_code"
        | "corrupted_file"
        | "failed" => VerdictGroup::NotSupported,
        "neutral" => VerdictGroup::Neutral,
        TESTING => VerdictGroup::Testing,
        _ => VerdictGroup::Other,
    }
}

pub fn is_administration_tool(verdict: &str) -> bool {
    matches!(verdict, "administration_tool" | "known_administration_tool")
}

/// Applies the verdict rules to Intezer's verdict and sub-verdict. `None`
/// means the file gets an empty result: the verdict is missing, trusted,
/// not supported, or the analysis failed.
pub fn effective_verdict(verdict: Option<&str>, sub_verdict: Option<&str>) -> Option<String> {
    let verdict = verdict.map(str::trim).filter(|v| !v.is_empty())?;
    match group(verdict) {
        VerdictGroup::Trusted | VerdictGroup::NotSupported => return None,
        _ => {}
    }
    if verdict == "suspicious" {
        match sub_verdict {
            Some("probably_packed") => return Some("probably_packed".to_string()),
            Some("administration_tool") => return Some("administration_tool".to_string()),
            Some("known_administration_tool") => {
                return Some("known_administration_tool".to_string())
            }
            _ => {}
        }
    }
    Some(verdict.to_string())
}

/// Replaces a malicious or suspicious verdict by [`TESTING`] when Intezer's
/// own verdicts are not trusted.
pub fn apply_black_box(verdict: &str, use_black_box_verdicts: bool) -> String {
    let scored = matches!(
        group(verdict),
        VerdictGroup::Malicious | VerdictGroup::Suspicious
    );
    if !use_black_box_verdicts && scored {
        TESTING.to_string()
    } else {
        verdict.to_string()
    }
}

/// The heuristic a verdict raises: 1 malicious, 2 suspicious, 3 of interest.
/// With `score_administration_tools` off, both administration-tool verdicts
/// raise 3 instead of 2.
pub fn verdict_heuristic(verdict: &str, score_administration_tools: bool) -> Option<u32> {
    if is_administration_tool(verdict) && !score_administration_tools {
        return Some(3);
    }
    match group(verdict) {
        VerdictGroup::Malicious => Some(1),
        VerdictGroup::Suspicious => Some(2),
        VerdictGroup::OfInterest => Some(3),
        _ => None,
    }
}

/// The heuristic Intezer's raw sub-verdict raises (13 to 19). It follows the
/// same switches as the main verdict: with `use_black_box_verdicts` off a
/// malicious or suspicious sub-verdict raises none, and with
/// `score_administration_tools` off neither administration-tool value does.
pub fn sub_verdict_heuristic(
    sub_verdict: &str,
    use_black_box_verdicts: bool,
    score_administration_tools: bool,
) -> Option<u32> {
    let heuristic = match sub_verdict {
        "malicious" => 13,
        "known_malicious" => 14,
        "suspicious" => 15,
        "unique" => 16,
        "trusted" => 17,
        "administration_tool" => 18,
        "known_administration_tool" => 19,
        _ => return None,
    };
    if !use_black_box_verdicts && matches!(heuristic, 13..=15 | 18 | 19) {
        return None;
    }
    if !score_administration_tools && matches!(heuristic, 18 | 19) {
        return None;
    }
    Some(heuristic)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trusted_and_unsupported_give_no_verdict() {
        assert_eq!(
            effective_verdict(Some("trusted"), Some("known_trusted")),
            None
        );
        assert_eq!(effective_verdict(Some("known_library"), None), None);
        assert_eq!(
            effective_verdict(Some("file_type_not_supported"), None),
            None
        );
        assert_eq!(effective_verdict(Some("failed"), None), None);
        assert_eq!(effective_verdict(None, Some("malicious")), None);
        assert_eq!(effective_verdict(Some(""), None), None);
    }

    #[test]
    fn suspicious_sub_verdicts_refine_verdict() {
        assert_eq!(
            effective_verdict(Some("suspicious"), Some("probably_packed")).as_deref(),
            Some("probably_packed")
        );
        assert_eq!(
            effective_verdict(Some("suspicious"), Some("administration_tool")).as_deref(),
            Some("administration_tool")
        );
        assert_eq!(
            effective_verdict(Some("suspicious"), Some("suspicious")).as_deref(),
            Some("suspicious")
        );
        assert_eq!(
            effective_verdict(Some("malicious"), Some("probably_packed")).as_deref(),
            Some("malicious")
        );
    }

    #[test]
    fn verdict_heuristics_by_group() {
        assert_eq!(verdict_heuristic("malicious", true), Some(1));
        assert_eq!(verdict_heuristic("known_malicious", true), Some(1));
        assert_eq!(verdict_heuristic("suspicious", true), Some(2));
        assert_eq!(verdict_heuristic("administration_tool", true), Some(2));
        assert_eq!(verdict_heuristic("probably_packed", true), Some(3));
        assert_eq!(verdict_heuristic("unknown", true), None);
        assert_eq!(verdict_heuristic("testing", true), None);
        assert_eq!(verdict_heuristic("no_threats", true), None);
    }

    #[test]
    fn administration_tools_not_scored_raise_three() {
        assert_eq!(verdict_heuristic("administration_tool", false), Some(3));
        assert_eq!(
            verdict_heuristic("known_administration_tool", false),
            Some(3)
        );
    }

    #[test]
    fn black_box_off_turns_scored_verdicts_into_testing() {
        assert_eq!(apply_black_box("malicious", false), TESTING);
        assert_eq!(apply_black_box("suspicious", false), TESTING);
        assert_eq!(apply_black_box("probably_packed", false), "probably_packed");
        assert_eq!(apply_black_box("malicious", true), "malicious");
    }

    #[test]
    fn sub_verdict_heuristics_match_exactly() {
        assert_eq!(sub_verdict_heuristic("malicious", true, true), Some(13));
        assert_eq!(
            sub_verdict_heuristic("known_malicious", true, true),
            Some(14)
        );
        assert_eq!(sub_verdict_heuristic("suspicious", true, true), Some(15));
        assert_eq!(sub_verdict_heuristic("unique", true, true), Some(16));
        assert_eq!(sub_verdict_heuristic("trusted", true, true), Some(17));
        assert_eq!(
            sub_verdict_heuristic("administration_tool", true, true),
            Some(18)
        );
        assert_eq!(
            sub_verdict_heuristic("known_administration_tool", true, true),
            Some(19)
        );
        assert_eq!(sub_verdict_heuristic("tool", true, true), None);
        assert_eq!(sub_verdict_heuristic("probably_packed", true, true), None);
    }

    #[test]
    fn sub_verdict_heuristics_follow_switches() {
        assert_eq!(sub_verdict_heuristic("malicious", false, true), None);
        assert_eq!(sub_verdict_heuristic("unique", false, true), Some(16));
        assert_eq!(
            sub_verdict_heuristic("administration_tool", true, false),
            None
        );
        assert_eq!(sub_verdict_heuristic("trusted", true, false), Some(17));
    }
}
