#!/usr/bin/env python3
"""A stand-in Assemblyline 4 service server, for checking a service against a
second implementation of the protocol.

It serves the part of the service-server REST API a service container uses:
register, task long poll, file download and upload, result and error POST
(with the missing-files loop), safelist lookups and /healthz/live. It checks
requests the way the Python and Rust Assemblyline service servers do and
records every rejected request. It listens on 127.0.0.1 only and needs
nothing but the Python 3.11 standard library.

Example:

    python3 tests/standin/al_service_server.py --port 0 --port-file /tmp/port \
        --files sample.exe --config api_key=secret --report /tmp/report.json

The report (JSON) is written at start, after each registration and
completion, and on SIGTERM or SIGINT, after which the server exits. Its keys:
registered, manifest, tasks_queued, tasks_handed_out, completions (sid,
sha256, kind "Result" or "Error", body, freshen), lost, completed_twice,
never_handed_out, uploads, protocol_errors.
"""

import argparse
import hashlib
import json
import logging
import os
import secrets
import signal
import string
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

DEFAULT_API_KEY = "ThisIsARandomAuthKey...ChangeMe!"
DEFAULT_SERVICE_NAME = "IntezerDynamic"
SERVER_VERSION = "4.7.4.25"

# Long-poll wait when GET /api/v1/task/ has no Timeout header, as in Assemblyline.
DEFAULT_TIMEOUT_SECONDS = 30.0

IDENTITY_HEADERS = ("Container-ID", "Service-Name", "Service-Version", "Service-Tool-Version")

SECTION_FORMATS = {
    "TEXT", "MEMORY_DUMP", "GRAPH_DATA", "URL", "JSON", "KEY_VALUE", "PROCESS_TREE",
    "TABLE", "IMAGE", "MULTI", "ORDERED_KEY_VALUE", "TIMELINE", "SANDBOX",
}
PLAIN_TEXT_FORMATS = {"TEXT", "MEMORY_DUMP"}
PROMOTIONS = {"SCREENSHOT", "ENTROPY", "URI_PARAMS"}
ERROR_STATUSES = {"FAIL_RECOVERABLE", "FAIL_NONRECOVERABLE"}
ERROR_TYPES = {
    "UNKNOWN", "EXCEPTION", "MAX DEPTH REACHED", "MAX FILES REACHED", "MAX RETRY REACHED",
    "SERVICE BUSY", "SERVICE DOWN", "TASK PRE-EMPTED",
}
SEVERITIES = {"error", "warning"}
PARAM_TYPES = {"str", "int", "list", "bool"}

BASE62 = string.ascii_letters + string.digits

log = logging.getLogger("al-standin")


class Invalid(Exception):
    """A request body defect; the message starts with the field's path."""


# ---------------------------------------------------------------------------
# Body checks


def is_hex_sha256(value):
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def describe(value):
    names = {type(None): "null", bool: "a boolean", int: "a number", float: "a number",
             str: "a string", list: "a list", dict: "an object"}
    return names.get(type(value), type(value).__name__)


def need_dict(parent, key, path):
    if key not in parent:
        raise Invalid(f"{path} is missing")
    value = parent[key]
    if not isinstance(value, dict):
        raise Invalid(f"{path} must be an object, got {describe(value)}")
    return value


def need_list(parent, key, path):
    if key not in parent:
        raise Invalid(f"{path} is missing")
    value = parent[key]
    if not isinstance(value, list):
        raise Invalid(f"{path} must be a list, got {describe(value)}")
    return value


def need_text(parent, key, path):
    if key not in parent:
        raise Invalid(f"{path} is missing")
    value = parent[key]
    if not isinstance(value, str):
        raise Invalid(f"{path} must be a string, got {describe(value)}")
    if value == "":
        raise Invalid(f"{path} must not be an empty string")
    return value


def maybe_text(parent, key, path):
    """Accept an absent key, null, or a non-empty string."""
    if parent.get(key) is not None:
        need_text(parent, key, path)


def need_choice(parent, key, path, choices):
    value = need_text(parent, key, path)
    if value not in choices:
        raise Invalid(f"{path} must be one of {', '.join(sorted(choices))}, got {value!r}")
    return value


def need_int(parent, key, path):
    if key not in parent:
        raise Invalid(f"{path} is missing")
    if not is_int(parent[key]):
        raise Invalid(f"{path} must be an integer, got {describe(parent[key])}")
    return parent[key]


def maybe_int(parent, key, path):
    if parent.get(key) is not None:
        need_int(parent, key, path)


def maybe_bool(parent, key, path):
    if key in parent and not isinstance(parent[key], bool):
        raise Invalid(f"{path} must be a boolean, got {describe(parent[key])}")


def maybe_int_map(parent, key, path):
    if parent.get(key) is None:
        return
    for name in need_dict(parent, key, path):
        need_int(parent[key], name, f"{path}.{name}")


def need_sha256(parent, key, path):
    value = need_text(parent, key, path)
    if not is_hex_sha256(value):
        raise Invalid(f"{path} must be a SHA-256 in 64 lowercase hex digits, got {value!r}")
    return value


def check_manifest(manifest, service_name):
    if not isinstance(manifest, dict):
        raise Invalid("manifest must be an object")
    name = need_text(manifest, "name", "name")
    if name != service_name:
        raise Invalid(f"name {name!r} does not match the service name {service_name!r} of this server")
    need_text(manifest, "version", "version")
    docker = need_dict(manifest, "docker_config", "docker_config")
    need_text(docker, "image", "docker_config.image")
    need_dict(manifest, "config", "config")
    maybe_int(manifest, "timeout", "timeout")
    for number, heuristic in enumerate(need_list(manifest, "heuristics", "heuristics")):
        where = f"heuristics[{number}]"
        if not isinstance(heuristic, dict):
            raise Invalid(f"{where} must be an object")
        heur_id = heuristic.get("heur_id")
        if not (is_int(heur_id) or (isinstance(heur_id, str) and heur_id)):
            raise Invalid(f"{where}.heur_id must be an integer or a non-empty string")
        try:
            need_text(heuristic, "name", f"{where}.name")
            need_int(heuristic, "score", f"{where}.score")
            need_text(heuristic, "filetype", f"{where}.filetype")
            need_text(heuristic, "description", f"{where}.description")
            maybe_int(heuristic, "max_score", f"{where}.max_score")
            maybe_int_map(heuristic, "signature_score_map", f"{where}.signature_score_map")
        except Invalid as problem:
            raise Invalid(f"{name} has an invalid heuristic ({heur_id}): {problem}") from None
    for number, param in enumerate(manifest.get("submission_params") or []):
        where = f"submission_params[{number}]"
        if not isinstance(param, dict):
            raise Invalid(f"{where} must be an object")
        need_text(param, "name", f"{where}.name")
        need_choice(param, "type", f"{where}.type", PARAM_TYPES)
        for key in ("value", "default"):
            if key not in param:
                raise Invalid(f"{where}.{key} is missing")


def check_file_entry(entry, where):
    if not isinstance(entry, dict):
        raise Invalid(f"{where} must be an object, got {describe(entry)}")
    need_text(entry, "name", f"{where}.name")
    need_sha256(entry, "sha256", f"{where}.sha256")
    need_text(entry, "description", f"{where}.description")
    need_text(entry, "classification", f"{where}.classification")
    for flag in ("is_section_image", "is_supplementary", "allow_dynamic_recursion"):
        maybe_bool(entry, flag, f"{where}.{flag}")
    maybe_text(entry, "parent_relation", f"{where}.parent_relation")


def check_section(section, where):
    if not isinstance(section, dict):
        raise Invalid(f"{where} must be an object, got {describe(section)}")
    need_text(section, "title_text", f"{where}.title_text")
    body_format = need_choice(section, "body_format", f"{where}.body_format", SECTION_FORMATS)
    need_text(section, "classification", f"{where}.classification")
    depth = need_int(section, "depth", f"{where}.depth")
    if depth < 0:
        raise Invalid(f"{where}.depth must be 0 or more, got {depth}")
    need_dict(section, "tags", f"{where}.tags")

    body = section.get("body")
    if body is not None:
        if not isinstance(body, str):
            raise Invalid(f"{where}.body must be a string or null, got {describe(body)} "
                          "(structured bodies are sent as JSON text)")
        if body == "":
            raise Invalid(f"{where}.body must not be an empty string (send null for an empty body)")
        if body_format not in PLAIN_TEXT_FORMATS:
            try:
                json.loads(body)
            except ValueError as problem:
                raise Invalid(f"{where}.body of a {body_format} section must be JSON text: {problem}") from None

    if section.get("body_config") is not None and not isinstance(section["body_config"], dict):
        raise Invalid(f"{where}.body_config must be an object or null")
    if section.get("promote_to") is not None:
        need_choice(section, "promote_to", f"{where}.promote_to", PROMOTIONS)
    for flag in ("auto_collapse", "zeroize_on_tag_safe", "zeroize_on_sig_safe"):
        maybe_bool(section, flag, f"{where}.{flag}")

    heuristic = section.get("heuristic")
    if heuristic is None:
        return
    if not isinstance(heuristic, dict):
        raise Invalid(f"{where}.heuristic must be an object or null")
    heur_id = heuristic.get("heur_id")
    if "heur_id" not in heuristic:
        raise Invalid(f"{where}.heuristic.heur_id is missing")
    if not (is_int(heur_id) or (isinstance(heur_id, str) and heur_id)):
        raise Invalid(f"{where}.heuristic.heur_id must be an integer or a non-empty string")
    attack_ids = heuristic.get("attack_ids")
    if isinstance(attack_ids, list):
        for number, attack_id in enumerate(attack_ids):
            if not (isinstance(attack_id, str) and attack_id):
                raise Invalid(f"{where}.heuristic.attack_ids[{number}] must be a non-empty string")
    elif attack_ids is not None and not isinstance(attack_ids, str):
        raise Invalid(f"{where}.heuristic.attack_ids must be a list")
    maybe_int_map(heuristic, "signatures", f"{where}.heuristic.signatures")
    maybe_int_map(heuristic, "score_map", f"{where}.heuristic.score_map")
    maybe_int(heuristic, "frequency", f"{where}.heuristic.frequency")
    maybe_int(heuristic, "score", f"{where}.heuristic.score")


def check_result(result, freshen, task):
    if not isinstance(result, dict):
        raise Invalid("result must be an object")
    need_text(result, "classification", "result.classification")
    sha256 = need_sha256(result, "sha256", "result.sha256")
    if sha256 != task["sha256"]:
        raise Invalid(f"result.sha256 {sha256} does not match the task's file {task['sha256']}")
    maybe_text(result, "type", "result.type")
    maybe_int(result, "size", "result.size")
    maybe_bool(result, "drop_file", "result.drop_file")
    maybe_bool(result, "partial", "result.partial")
    if "temp_submission_data" in result:
        need_dict(result, "temp_submission_data", "result.temp_submission_data")

    response = need_dict(result, "response", "result.response")
    name = need_text(response, "service_name", "result.response.service_name")
    if name != task["service_name"]:
        raise Invalid(f"result.response.service_name {name!r} does not match the task's service "
                      f"{task['service_name']!r}")
    need_text(response, "service_version", "result.response.service_version")
    for key in ("service_tool_version", "service_context", "service_debug_info"):
        maybe_text(response, key, f"result.response.{key}")
    if response.get("milestones") is not None:
        milestones = need_dict(response, "milestones", "result.response.milestones")
        for key in ("service_started", "service_completed"):
            need_text(milestones, key, f"result.response.milestones.{key}")
    for key in ("extracted", "supplementary"):
        if key not in response and not freshen:
            continue
        for number, entry in enumerate(need_list(response, key, f"result.response.{key}")):
            check_file_entry(entry, f"result.response.{key}[{number}]")

    inner = need_dict(result, "result", "result.result")
    maybe_int(inner, "score", "result.result.score")
    for number, section in enumerate(need_list(inner, "sections", "result.result.sections")):
        check_section(section, f"result.result.sections[{number}]")


def check_error(error, task):
    if not isinstance(error, dict):
        raise Invalid("error must be an object")
    response = need_dict(error, "response", "error.response")
    need_text(response, "message", "error.response.message")
    name = need_text(response, "service_name", "error.response.service_name")
    if name != task["service_name"]:
        raise Invalid(f"error.response.service_name {name!r} does not match the task's service "
                      f"{task['service_name']!r}")
    need_text(response, "service_version", "error.response.service_version")
    maybe_text(response, "service_tool_version", "error.response.service_tool_version")
    maybe_text(response, "service_debug_info", "error.response.service_debug_info")
    need_choice(response, "status", "error.response.status", ERROR_STATUSES)
    sha256 = need_sha256(error, "sha256", "error.sha256")
    if sha256 != task["sha256"]:
        raise Invalid(f"error.sha256 {sha256} does not match the task's file {task['sha256']}")
    need_choice(error, "type", "error.type", ERROR_TYPES)
    if error.get("severity") is not None:
        need_choice(error, "severity", "error.severity", SEVERITIES)


def files_listed(result):
    listed = []
    for key in ("extracted", "supplementary"):
        for entry in result["response"].get(key) or []:
            listed.append(entry["sha256"])
    return listed


def multipart_field(body, content_type, field):
    """Return the bytes of the multipart/form-data part named `field`, or None."""
    boundary = None
    for piece in content_type.split(";")[1:]:
        key, _, value = piece.strip().partition("=")
        if key.lower() == "boundary":
            boundary = value.strip('"')
    if not boundary:
        raise Invalid("multipart body without a boundary parameter")

    # The first chunk contains the opening delimiter. Each later chunk starts
    # with "\r\n" when a part follows, or with "--" after the closing one.
    delimiter = b"--" + boundary.encode("latin-1")
    chunks = body.split(b"\r\n" + delimiter)
    if not chunks[0].startswith(delimiter):
        raise Invalid("multipart body does not start with its boundary")
    chunks[0] = chunks[0][len(delimiter):]

    for chunk in chunks:
        if chunk.startswith(b"--"):
            break
        head, separator, content = chunk[2:].partition(b"\r\n\r\n")
        if not separator:
            raise Invalid("multipart part without a blank line after its headers")
        if part_name(head.decode("latin-1")) == field:
            return content
    return None


def part_name(head):
    """Return the name parameter of a part's Content-Disposition header, or None."""
    for line in head.split("\r\n"):
        header, _, value = line.partition(":")
        if header.strip().lower() != "content-disposition":
            continue
        for parameter in value.split(";")[1:]:
            key, _, text = parameter.strip().partition("=")
            if key.lower() == "name":
                return text.strip('"')
    return None


# ---------------------------------------------------------------------------
# Server state


class Simulation:
    """Queue, running tasks, filestore and report, guarded by one condition."""

    def __init__(self, args):
        self.api_key = args.api_key
        self.service_name = args.service_name
        self.config = dict(args.config)
        self.params = dict(args.param)
        self.ask_missing = args.ask_missing_files
        self.corrupt_first = args.corrupt_first_download
        self.max_wait = args.max_long_poll
        self.timeout_override = args.timeout_override
        self.report_path = args.report
        self.safelist = {"match": {}, "regex": {}}

        self.changed = threading.Condition()
        # Handler threads write the report concurrently, so writes take turns.
        self.report_lock = threading.Lock()
        self.registrations = 0
        self.manifest = None
        self.pending = []          # list of (sid, file record) not handed out yet
        self.queued_count = 0
        self.running = {}          # sid -> task summary
        self.order = []            # sids in hand-out order
        self.completions = []
        self.done = {}             # sid -> number of completions
        self.twice = []
        self.store = {}            # sha256 -> bytes
        self.spoiled = set()
        self.uploads = []
        self.rejected = []

        for path in args.files:
            with open(path, "rb") as handle:
                data = handle.read()
            self.enqueue(os.path.basename(path), data, args.file_type or guess_type(data))

    def enqueue(self, name, data, file_type):
        sha256 = hashlib.sha256(data).hexdigest()
        record = {"name": name, "data": data, "type": file_type, "sha256": sha256}
        with self.changed:
            self.store[sha256] = data
            self.pending.append(("".join(secrets.choice(BASE62) for _ in range(22)), record))
            self.queued_count += 1
            self.changed.notify_all()

    def snapshot(self):
        with self.changed:
            return {
                "registered": self.registrations,
                "manifest": self.manifest,
                "tasks_queued": self.queued_count,
                "tasks_handed_out": len(self.order),
                "completions": list(self.completions),
                "lost": [sid for sid in self.order if sid not in self.done],
                "completed_twice": list(self.twice),
                "never_handed_out": [sid for sid, _ in self.pending],
                "uploads": list(self.uploads),
                "protocol_errors": list(self.rejected),
            }

    def write_report(self):
        if not self.report_path:
            return
        with self.report_lock:
            report = self.snapshot()
            temporary = f"{self.report_path}.tmp"
            with open(temporary, "w", encoding="utf-8") as handle:
                json.dump(report, handle, indent=2)
            os.replace(temporary, self.report_path)

    def build_task(self, sid, record, container_id):
        defaults = {}
        for param in (self.manifest or {}).get("submission_params") or []:
            defaults[param["name"]] = param.get("default")
        defaults.update(self.params)
        data = record["data"]
        if record["type"].startswith("executable/windows"):
            magic, mime = "PE32 executable (GUI) Intel 80386, for MS Windows", "application/x-dosexec"
        elif record["type"].startswith("executable/linux"):
            magic, mime = "ELF 64-bit LSB executable, x86-64", "application/x-executable"
        else:
            magic, mime = "data", "application/octet-stream"
        return {
            "sid": sid,
            "metadata": {"dispatcher__": secrets.token_hex(16), "worker__": container_id},
            "min_classification": "TLP:C",
            "fileinfo": {
                "magic": magic,
                "md5": hashlib.md5(data).hexdigest(),
                "mime": mime,
                "sha1": hashlib.sha1(data).hexdigest(),
                "sha256": record["sha256"],
                "size": len(data),
                "ssdeep": None,
                "tlsh": None,
                "type": record["type"],
                "uri_info": None,
            },
            "filename": record["name"],
            "service_name": self.service_name,
            "service_config": defaults,
            "depth": 0,
            "max_files": 500,
            "ttl": 15,
            "tags": [],
            "temporary_submission_data": [],
            "deep_scan": False,
            "ignore_cache": False,
            "ignore_recursion_prevention": False,
            "ignore_filtering": False,
            "priority": 150,
            "safelist_config": {"enabled": False, "hash_types": ["sha1", "sha256"],
                                "enforce_safelist_service": False},
        }

    def next_task(self, container_id, wait_seconds):
        deadline = time.monotonic() + wait_seconds
        with self.changed:
            while not self.pending:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self.changed.wait(remaining)
            sid, record = self.pending.pop(0)
            self.order.append(sid)
            self.running[sid] = {"sid": sid, "sha256": record["sha256"],
                                 "service_name": self.service_name}
            return self.build_task(sid, record, container_id)

    def complete(self, task, kind, body, freshen):
        with self.changed:
            sid = task["sid"]
            self.completions.append({"sid": sid, "sha256": task["sha256"], "kind": kind,
                                     "body": body, "freshen": freshen})
            self.done[sid] = self.done.get(sid, 0) + 1
            if self.done[sid] == 2:
                self.twice.append(sid)
            self.changed.notify_all()
        self.write_report()


def guess_type(data):
    if data.startswith(b"MZ"):
        return "executable/windows/pe32"
    if data.startswith(b"\x7fELF"):
        return "executable/linux/elf64"
    return "unknown"


# ---------------------------------------------------------------------------
# HTTP


class ServiceServerHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "al-standin"
    sim: Simulation = None  # set by main()

    # -- plumbing --

    def log_message(self, format, *args):
        log.debug("%s %s", self.address_string(), format % args)

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            pieces = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(pieces)
                pieces.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def send(self, status, body, content_type, extra_headers=()):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in extra_headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def answer(self, payload, status=200, message=""):
        envelope = {"api_response": payload, "api_error_message": message,
                    "api_server_version": SERVER_VERSION, "api_status_code": status}
        self.send(status, json.dumps(envelope).encode(), "application/json")

    def reject(self, status, message, payload=None, reason=None):
        reason = reason or message
        log.warning("rejected %s %s: %s", self.command, self.path, reason)
        with self.sim.changed:
            self.sim.rejected.append(f"{self.command} {urlsplit(self.path).path}: {reason} ({status})")
        self.answer(payload, status, message)

    def identify(self):
        """Check the API key and identity headers; return the Container-ID or None."""
        key = self.headers.get("X-APIKey")
        if key is None or key != self.sim.api_key:
            reason = "missing header X-APIKey" if key is None else "wrong API key in header X-APIKey"
            self.reject(401, "Unauthorized access denied", "", reason)
            return None
        for name in IDENTITY_HEADERS:
            value = self.headers.get(name)
            if value is None:
                self.reject(400, f"missing required header {name}")
                return None
            if value == "" and name != "Service-Tool-Version":
                self.reject(400, f"header {name} must not be empty")
                return None
        if self.headers["Service-Name"] != self.sim.service_name:
            self.reject(400, f"header Service-Name {self.headers['Service-Name']!r} does not match "
                             f"the service {self.sim.service_name!r} of this server")
            return None
        return self.headers["Container-ID"]

    def json_body(self):
        try:
            return json.loads(self.read_body())
        except ValueError:
            return None

    # -- routing --

    def route(self):
        path = urlsplit(self.path).path
        method = self.command
        fixed = {
            "/healthz/live": {"GET": self.healthz},
            "/api/v1/service/register/": {"PUT": self.register, "POST": self.register},
            "/api/v1/task/": {"GET": self.get_task, "POST": self.post_task},
            "/api/v1/file/": {"PUT": self.upload},
            "/api/v1/safelist/": {"GET": self.safelist},
            "/api/v1/safelist/signatures/": {"GET": self.safelist_signatures},
        }
        handlers = fixed.get(path)
        argument = None
        if handlers is None:
            parts = path.split("/")
            # ["", "api", "v1", "file", "<sha256>", ""]
            if len(parts) == 6 and parts[1:4] == ["api", "v1", "file"] and parts[5] == "":
                handlers, argument = {"GET": self.download}, parts[4]
            elif len(parts) == 6 and parts[1:4] == ["api", "v1", "safelist"] and parts[5] == "":
                handlers, argument = {"GET": self.safelist_item}, parts[4]
        if handlers is None:
            self.read_body()
            if path.startswith("/api/v1/") and not path.endswith("/"):
                self.reject(404, f"not found: API paths end with a slash, request {path}/")
            else:
                self.reject(404, f"not found: no endpoint {path}")
            return
        handler = handlers.get(method)
        if handler is None:
            self.read_body()
            self.reject(405, f"method {method} is not allowed on {path}")
            return
        if argument is None:
            handler()
        else:
            handler(argument)

    do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = route

    # -- endpoints --

    def healthz(self):
        self.send(200, b"OK", "text/plain; charset=utf-8")

    def register(self):
        body = self.json_body()
        if self.identify() is None:
            return
        if body is None:
            return self.reject(400, "Data received not in JSON format.")
        try:
            check_manifest(body, self.sim.service_name)
        except Invalid as problem:
            return self.reject(400, str(problem))

        service = {key: value for key, value in body.items()
                   if key not in ("heuristics", "file_required", "tool_version")}
        service["version"] = service["version"].replace("stable", "")
        service["config"] = {**body["config"], **self.sim.config}
        if self.sim.timeout_override is not None:
            service["timeout"] = self.sim.timeout_override

        with self.sim.changed:
            earlier = (self.sim.manifest or {}).get("heuristics") or []
            self.sim.registrations += 1
            self.sim.manifest = body
        prefix = body["name"].upper()
        fresh = [f"{prefix}.{h['heur_id']}" for h in body["heuristics"] if h not in earlier]
        log.info("registered %s %s", body["name"], body["version"])
        self.sim.write_report()
        self.answer({"keep_alive": True, "new_heuristics": fresh, "service_config": service})

    def get_task(self):
        self.read_body()
        container_id = self.identify()
        if container_id is None:
            return
        raw = self.headers.get("Timeout")
        try:
            wait = DEFAULT_TIMEOUT_SECONDS if raw is None else float(raw)
        except ValueError:
            return self.reject(400, f"header Timeout {raw!r} is not a number of seconds")
        if wait != wait or wait in (float("inf"), float("-inf")):
            return self.reject(400, f"header Timeout {raw!r} is not a number of seconds")
        wait = min(max(wait, 0.0), self.sim.max_wait)
        if self.sim.manifest is None:
            return self.reject(404, "The service you're asking task for does not exist, try later", {},
                               "task requested before the service registered")
        task = self.sim.next_task(container_id, wait)
        if task is None:
            return self.answer({"task": False})
        log.info("handed out task %s for %s", task["sid"], task["fileinfo"]["sha256"])
        self.answer({"task": task})

    def post_task(self):
        body = self.json_body()
        if self.identify() is None:
            return
        if not isinstance(body, dict):
            return self.reject(400, "Data received not in JSON format.")
        echoed = body.get("task")
        try:
            if not isinstance(echoed, dict):
                raise Invalid("task is missing" if echoed is None else "task must be an object")
            sid = need_text(echoed, "sid", "task.sid")
            fileinfo = need_dict(echoed, "fileinfo", "task.fileinfo")
            need_sha256(fileinfo, "sha256", "task.fileinfo.sha256")
            need_text(echoed, "service_name", "task.service_name")
        except Invalid as problem:
            return self.reject(400, str(problem))
        with self.sim.changed:
            task = self.sim.running.get(sid)
        if task is None:
            return self.reject(400, f"task.sid {sid!r} was never handed out by this server")
        if fileinfo["sha256"] != task["sha256"]:
            return self.reject(400, f"task.fileinfo.sha256 does not match the file {task['sha256']} of task {sid}")
        if echoed["service_name"] != task["service_name"]:
            return self.reject(400, f"task.service_name does not match the service "
                                    f"{task['service_name']!r} of task {sid}")

        if "result" in body:
            if "freshen" not in body:
                return self.reject(400, "freshen is missing (send true, or false after uploading missing files)")
            freshen = body["freshen"]
            if not isinstance(freshen, bool):
                return self.reject(400, "freshen must be a boolean")
            try:
                check_result(body["result"], freshen, task)
            except Invalid as problem:
                return self.reject(400, str(problem))
            if freshen and self.sim.ask_missing:
                with self.sim.changed:
                    missing = []
                    for sha256 in files_listed(body["result"]):
                        if sha256 not in self.sim.store and sha256 not in missing:
                            missing.append(sha256)
                if missing:
                    log.info("task %s lists %d files not uploaded yet", sid, len(missing))
                    return self.answer({"success": False, "missing_files": missing})
            self.sim.complete(task, "Result", body["result"], freshen)
            log.info("task %s completed with a result", sid)
            return self.answer({"success": True})

        if "error" in body:
            try:
                check_error(body["error"], task)
            except Invalid as problem:
                return self.reject(400, str(problem))
            self.sim.complete(task, "Error", body["error"], None)
            log.info("task %s completed with an error", sid)
            return self.answer({"success": True})

        self.reject(400, "No result or error provided by service.")

    def download(self, sha256):
        self.read_body()
        if self.identify() is None:
            return
        if not is_hex_sha256(sha256):
            return self.reject(400, f"{sha256!r} is not a SHA-256 in 64 lowercase hex digits")
        with self.sim.changed:
            data = self.sim.store.get(sha256)
            spoil = data is not None and self.sim.corrupt_first and sha256 not in self.sim.spoiled
            if spoil:
                self.sim.spoiled.add(sha256)
        if data is None:
            # A service may ask for any file, so a miss is not a protocol error.
            return self.answer({}, 404, "The file was not found in the system.")
        if spoil:
            data = bytes([data[0] ^ 0xFF]) + data[1:] if data else b"\0"
        self.send(200, data, "application/octet-stream",
                  [("Content-Disposition", f"attachment; filename=file.bin; filename*=UTF-8''{sha256}")])

    def upload(self):
        raw = self.read_body()
        if self.identify() is None:
            return
        announced = (self.headers.get("sha256") or "").strip()
        for name in ("sha256", "classification", "ttl"):
            if not (self.headers.get(name) or "").strip():
                return self.reject(400, f"missing required header {name}")
        if not is_hex_sha256(announced):
            return self.reject(400, f"header sha256 {announced!r} is not a SHA-256 in 64 lowercase hex digits")
        try:
            int(self.headers["ttl"].strip())
        except ValueError:
            return self.reject(400, f"header ttl {self.headers['ttl']!r} is not a whole number of days")
        for name in ("Is-Section-Image", "Is-Supplementary"):
            flag = self.headers.get(name)
            if flag is not None and flag.lower() not in ("true", "false"):
                return self.reject(400, f"header {name} must be true or false, got {flag!r}")

        content_type = self.headers.get("Content-Type", "")
        data = raw
        if content_type.split(";")[0].strip().lower() == "multipart/form-data":
            try:
                data = multipart_field(raw, content_type, "file")
            except Invalid as problem:
                return self.reject(400, str(problem))
            if data is None:
                return self.reject(400, "multipart body has no part named file")

        actual = hashlib.sha256(data).hexdigest()
        if actual != announced:
            return self.reject(400, f"Uploaded file does not match expected file hash. [{actual} != {announced}]",
                               {"success": False})
        with self.sim.changed:
            self.sim.store[actual] = data
            self.sim.uploads.append(actual)
        log.info("stored upload %s (%d bytes)", actual, len(data))
        self.answer({"success": True})

    def safelist(self):
        self.read_body()
        if self.identify() is None:
            return
        query = parse_qs(urlsplit(self.path).query)
        if "tag_types" not in query:
            return self.answer(self.sim.safelist)
        requested = {name.strip() for value in query["tag_types"] for name in value.split(",") if name.strip()}
        self.answer({kind: {tag: values for tag, values in self.sim.safelist[kind].items() if tag in requested}
                     for kind in ("match", "regex")})

    def safelist_signatures(self):
        self.read_body()
        if self.identify() is None:
            return
        self.answer([])

    def safelist_item(self, _hash):
        self.read_body()
        if self.identify() is None:
            return
        self.answer(None, 404, "The hash was not found in the safelist.")


# ---------------------------------------------------------------------------
# Command line


def key_value(text):
    """Parse KEY=VALUE; VALUE is read as JSON when it parses, else kept as text."""
    key, separator, value = text.partition("=")
    if not separator or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


def parse_arguments(argv):
    parser = argparse.ArgumentParser(description="Stand-in Assemblyline 4 service server on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=0, help="TCP port to listen on; 0 picks a free one")
    parser.add_argument("--port-file", help="write the bound port to this file once listening")
    parser.add_argument("--files", nargs="*", default=[], help="files to hand out, one task each, in order")
    parser.add_argument("--file-type", help="Assemblyline type of every file (default: guessed from its first bytes)")
    parser.add_argument("--config", nargs="*", type=key_value, default=[], action="extend",
                        metavar="KEY=VALUE", help="service config values returned at registration")
    parser.add_argument("--param", nargs="*", type=key_value, default=[], action="extend",
                        metavar="KEY=VALUE", help="submission parameter values put in every task")
    parser.add_argument("--report", help="path of the JSON report")
    parser.add_argument("--api-key", default=DEFAULT_API_KEY, help="expected X-APIKey header")
    parser.add_argument("--service-name", default=DEFAULT_SERVICE_NAME, help="expected Service-Name header")
    parser.add_argument("--ask-missing-files", action="store_true",
                        help="reply with missing_files to results listing extracted/supplementary files not uploaded yet")
    parser.add_argument("--corrupt-first-download", action="store_true",
                        help="serve wrong bytes on the first download of each file")
    parser.add_argument("--max-long-poll", type=float, default=DEFAULT_TIMEOUT_SECONDS,
                        help="maximum wait of one task long poll, in seconds")
    parser.add_argument("--timeout-override", type=int,
                        help="service_config.timeout returned at registration, in seconds")
    parser.add_argument("--log-level", default="INFO", help="Python logging level")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_arguments(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sim = Simulation(args)
    ServiceServerHandler.sim = sim
    server = ThreadingHTTPServer(("127.0.0.1", args.port), ServiceServerHandler)
    server.daemon_threads = True
    port = server.server_address[1]

    sim.write_report()
    if args.port_file:
        temporary = f"{args.port_file}.tmp"
        with open(temporary, "w", encoding="utf-8") as handle:
            handle.write(f"{port}\n")
        os.replace(temporary, args.port_file)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    worker = threading.Thread(target=server.serve_forever, name="http", daemon=True)
    worker.start()
    log.info("listening on 127.0.0.1:%d with %d queued tasks", port, sim.queued_count)

    stop.wait()
    log.info("stopping")
    sim.write_report()
    server.shutdown()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
