//! Builds the task JSON that `GET /api/v1/task/` hands out.

use rand::distr::Alphanumeric;
use rand::Rng;
use serde_json::{json, Map, Value};

use super::{ServiceServerOptions, SimFile};

/// Length of an Assemblyline random id (base62).
const SID_LENGTH: usize = 22;

/// Returns a fresh base62 submission id like the ones Assemblyline generates.
pub(super) fn new_sid() -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(SID_LENGTH)
        .map(char::from)
        .collect()
}

pub(super) fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

fn md5_hex(bytes: &[u8]) -> String {
    use md5::Digest as _;
    hex::encode(md5::Md5::digest(bytes))
}

fn sha1_hex(bytes: &[u8]) -> String {
    use sha1::Digest as _;
    hex::encode(sha1::Sha1::digest(bytes))
}

/// Returns whether `text` is a SHA-256 written as 64 lowercase hex digits.
pub(super) fn is_sha256(text: &str) -> bool {
    text.len() == 64
        && text
            .bytes()
            .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte))
}

/// Returns the libmagic description and MIME type a real server would have
/// stored for a file of this Assemblyline type. Only the broad families are
/// distinguished, because services use `type`, not `magic`.
fn magic_and_mime(file_type: &str) -> (&'static str, &'static str) {
    if file_type.starts_with("executable/windows") {
        (
            "PE32 executable (GUI) Intel 80386, for MS Windows",
            "application/x-dosexec",
        )
    } else if file_type.starts_with("executable/linux") {
        (
            "ELF 64-bit LSB executable, x86-64, version 1 (SYSV)",
            "application/x-executable",
        )
    } else {
        ("data", "application/octet-stream")
    }
}

/// Returns the submission parameter defaults of a registered manifest:
/// `{name: default}` for each `submission_params` entry.
fn submission_param_defaults(manifest: &Value) -> Map<String, Value> {
    let mut defaults = Map::new();
    let Some(params) = manifest.get("submission_params").and_then(Value::as_array) else {
        return defaults;
    };
    for param in params {
        if let Some(name) = param.get("name").and_then(Value::as_str) {
            let default = param.get("default").cloned().unwrap_or(Value::Null);
            defaults.insert(name.to_string(), default);
        }
    }
    defaults
}

/// Builds the task JSON for one file. `service_config` is the manifest's
/// submission parameter defaults, overlaid by the options' values, overlaid
/// by the task's own `params`.
pub(super) fn build_task(
    sid: &str,
    file: &SimFile,
    options: &ServiceServerOptions,
    manifest: &Value,
    params: Option<&Map<String, Value>>,
    container_id: &str,
) -> Value {
    let mut service_config = submission_param_defaults(manifest);
    for (key, value) in &options.submission_params {
        service_config.insert(key.clone(), value.clone());
    }
    for (key, value) in params.into_iter().flatten() {
        service_config.insert(key.clone(), value.clone());
    }

    let (magic, mime) = magic_and_mime(&file.file_type);
    let dispatcher_id: String = {
        let mut rng = rand::rng();
        (0..32)
            .map(|_| char::from_digit(rng.random_range(0..16), 16).unwrap_or('0'))
            .collect()
    };

    json!({
        "sid": sid,
        "metadata": {
            "dispatcher__": dispatcher_id,
            "worker__": container_id,
        },
        "min_classification": "TLP:C",
        "fileinfo": {
            "magic": magic,
            "md5": md5_hex(&file.bytes),
            "mime": mime,
            "sha1": sha1_hex(&file.bytes),
            "sha256": sha256_hex(&file.bytes),
            "size": file.bytes.len(),
            "ssdeep": null,
            "tlsh": null,
            "type": file.file_type,
            "uri_info": null,
        },
        "filename": file.name,
        "service_name": options.service_name,
        "service_config": service_config,
        "depth": 0,
        "max_files": 500,
        "ttl": 15,
        "tags": [],
        "temporary_submission_data": [],
        "deep_scan": false,
        "ignore_cache": false,
        "ignore_recursion_prevention": false,
        "ignore_filtering": false,
        "priority": 150,
        "safelist_config": {
            "enabled": false,
            "hash_types": ["sha1", "sha256"],
            "enforce_safelist_service": false,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_match_known_vectors() {
        assert_eq!(md5_hex(b"abc"), "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(sha1_hex(b"abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn sid_is_base62_of_fixed_length() {
        let sid = new_sid();
        assert_eq!(sid.len(), SID_LENGTH);
        assert!(sid.bytes().all(|byte| byte.is_ascii_alphanumeric()));
        assert_ne!(sid, new_sid());
    }

    #[test]
    fn is_sha256_rejects_uppercase_and_short() {
        assert!(is_sha256(&sha256_hex(b"x")));
        assert!(!is_sha256(&sha256_hex(b"x").to_uppercase()));
        assert!(!is_sha256("abc"));
    }

    #[test]
    fn service_config_layers_defaults_options_and_params() {
        let manifest = json!({"submission_params": [
            {"name": "dynamic_submit", "type": "bool", "value": true, "default": true},
            {"name": "analysis_id", "type": "str", "value": "", "default": ""},
            {"name": "extra", "type": "int", "value": 1, "default": 1},
        ]});
        let mut options = ServiceServerOptions::default();
        options
            .submission_params
            .insert("dynamic_submit".into(), json!(false));
        options.submission_params.insert("extra".into(), json!(2));
        let mut params = Map::new();
        params.insert("extra".into(), json!(3));
        let file = SimFile {
            name: "a.exe".into(),
            bytes: bytes::Bytes::from_static(b"MZ"),
            file_type: "executable/windows/pe32".into(),
        };

        let task = build_task("sid", &file, &options, &manifest, Some(&params), "host-1");

        assert_eq!(
            task["service_config"],
            json!({"dynamic_submit": false, "analysis_id": "", "extra": 3})
        );
        assert_eq!(task["metadata"]["worker__"], "host-1");
        assert_eq!(task["fileinfo"]["size"], 2);
        assert_eq!(task["fileinfo"]["mime"], "application/x-dosexec");
    }
}
