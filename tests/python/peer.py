"""pythonic_gmail as a peer of the Rust functions, for tests/tests/interop.rs.

Every write goes through pythonic_gmail's own builders (AwsParameterStoreClientBuilder,
LocalPathClientBuilder) with credentials serialized by google-auth itself; every read goes
through the builders' get_creds() and Credentials.from_authorized_user_info. Output is one
JSON object on stdout. SSM is reached through boto3's standard AWS_ENDPOINT_URL variable.
"""

import argparse
import datetime
import json
import sys
from pathlib import Path

try:
    import boto3
    import google.auth
    from google.oauth2.credentials import Credentials
    from pythonic_gmail.client_builder import AwsParameterStoreClientBuilder, LocalPathClientBuilder
    import simple_aws_ssm_parameter_store  # noqa: F401  (pythonic_gmail imports it lazily)
    import pythonic_gmail
except ImportError as error:  # a clear message, never a skip
    print(f"missing Python package: {error.name}; run `make venv`", file=sys.stderr)
    sys.exit(3)

SCOPES = ["https://www.googleapis.com/auth/gmail.readonly"]


def ssm_builder(args):
    return AwsParameterStoreClientBuilder(
        scopes=SCOPES,
        ssm_client=boto3.client("ssm"),
        param_name_client_secrets=args.secrets_param or "/unused/client-secrets",
        param_name_token=args.param,
    )


def file_builder(args):
    return LocalPathClientBuilder(
        scopes=SCOPES,
        path_client_secrets=Path(args.secrets_path or "/unused/client_secrets.json"),
        path_token=Path(args.path),
    )


def builder(args):
    return ssm_builder(args) if args.param else file_builder(args)


def describe(creds):
    return {
        "token": creds.token,
        "refresh_token": creds.refresh_token,
        "client_id": creds.client_id,
        "client_secret": creds.client_secret,
        "token_uri": creds.token_uri,
        "scopes": list(creds.scopes or []),
        # google-auth keeps expiry as a naive UTC datetime.
        "expiry": creds.expiry.strftime("%Y-%m-%dT%H:%M:%SZ") if creds.expiry else None,
        "expired": creds.expired,
        "account": creds.account,
    }


def write_token(args):
    """Serializes credentials with google-auth (Credentials.to_json) and stores them with the builder."""
    info = json.loads(args.token_json)
    expiry = datetime.datetime.strptime(info.pop("expiry"), "%Y-%m-%dT%H:%M:%SZ")
    creds = Credentials(
        token=info["token"],
        refresh_token=info["refresh_token"],
        token_uri=info["token_uri"],
        client_id=info["client_id"],
        client_secret=info["client_secret"],
        scopes=info["scopes"],
        expiry=expiry,
        rapt_token=info.get("rapt_token"),
    )
    data = json.loads(creds.to_json())
    data.update(info.get("extra", {}))
    builder(args).write_token_config(data)
    return {"written": data}


def read_token(args):
    """Loads the stored token the two ways pythonic_gmail users do."""
    b = builder(args)
    raw = b.read_token_config()
    via_builder = b.get_creds()
    direct = Credentials.from_authorized_user_info(info=raw, scopes=SCOPES)
    return {"raw": raw, "builder": describe(via_builder), "direct": describe(direct)}


def write_client_secrets(args):
    data = json.loads(Path(args.file).read_text(encoding="utf-8"))
    builder(args).write_client_secrets_config(data)
    return {"written": list(data)}


def versions(_args):
    return {"pythonic_gmail": pythonic_gmail.__version__, "google-auth": google.auth.__version__, "boto3": boto3.__version__}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["write-token", "read-token", "write-client-secrets", "versions"])
    parser.add_argument("--param", help="SSM parameter of the token (AwsParameterStoreClientBuilder)")
    parser.add_argument("--secrets-param", help="SSM parameter of the client secrets")
    parser.add_argument("--path", help="token file (LocalPathClientBuilder)")
    parser.add_argument("--secrets-path", help="client secrets file")
    parser.add_argument("--token-json", help="the credentials to write, as JSON")
    parser.add_argument("--file", help="client secrets JSON to store")
    args = parser.parse_args()
    handler = {
        "write-token": write_token,
        "read-token": read_token,
        "write-client-secrets": write_client_secrets,
        "versions": versions,
    }[args.command]
    print(json.dumps(handler(args)))


if __name__ == "__main__":
    main()
