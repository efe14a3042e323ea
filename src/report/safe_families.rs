//! Families that Intezer classes as administration tools or packers but that
//! are common in legitimate software, so their code reuse never marks a file
//! as "of interest". The names are the ones the Python Intezer service
//! treats as safe, spelled as Intezer reports them.

/// Administration tools whose code reuse is no sign of intent.
const SAFE_ADMINISTRATION_TOOLS: &[&str] = &[
    "RealVNC",
    "FileZilla Project",
    "TightVNC",
    "Sysinternals",
    "tftp",
    "WinDirStat",
    "Wireshark",
    "UltraVNC",
    "NetSupport Ltd",
    "Mobatek",
    "Devolutions inc.",
    "PuTTY",
    "TeamViewer GmbH",
    "HashiCorp",
    "traceroute",
    "WinSCP",
    "OpenSSH",
    "AnyDesk Software GmbH",
    "Wget",
];

/// Packers that legitimate software uses as often as malware does.
const SAFE_PACKERS: &[&str] = &["UPX"];

/// Returns whether `family_name` is a safe family of `family_type`. Names
/// match exactly, as Intezer spells them. Other family types have no safe
/// list.
pub fn is_safe_family(family_type: &str, family_name: &str) -> bool {
    let safe_names = match family_type {
        "administration_tool" => SAFE_ADMINISTRATION_TOOLS,
        "packer" => SAFE_PACKERS,
        _ => return false,
    };
    safe_names.contains(&family_name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upx_is_safe_packer() {
        assert!(is_safe_family("packer", "UPX"));
    }

    #[test]
    fn listed_administration_tool_is_safe() {
        assert!(is_safe_family("administration_tool", "TeamViewer GmbH"));
        assert!(is_safe_family("administration_tool", "Devolutions inc."));
    }

    #[test]
    fn safe_name_under_other_type_is_not_safe() {
        assert!(!is_safe_family("packer", "PuTTY"));
        assert!(!is_safe_family("malware", "UPX"));
    }

    #[test]
    fn names_match_case_sensitively() {
        assert!(!is_safe_family("packer", "upx"));
    }
}
