"""The Microsoft Entra ID (login.microsoftonline.com) part of the fake Graph server: what MSAL talks to.

Endpoints, shaped after the Microsoft identity platform documentation:
- ``GET /{tenant}/v2.0/.well-known/openid-configuration`` — "OpenID Connect on the Microsoft identity platform"
  (issuer, authorization / token / device authorization endpoints);
- ``POST /{tenant}/oauth2/v2.0/token`` — "OAuth 2.0 client credentials flow" (``client_secret`` in the body or
  HTTP Basic, or a signed ``client_assertion``: "certificate credentials"), "OAuth 2.0 device authorization
  grant" (``authorization_pending`` until the user signs in) and refresh tokens ("refresh the access token":
  a new refresh token each time, the old one stays valid unless revoked). Errors are
  ``{"error", "error_description", "error_codes", …}`` with AADSTS codes.
- ``POST /{tenant}/oauth2/v2.0/devicecode`` — user_code, device_code, verification_uri, interval, message.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import jwt
from cryptography import x509

APP_ROLES = ("Mail.Read", "Calendars.Read", "Contacts.Read")
_ASSERTION = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
_DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


@dataclass
class AppRegistration:
    client_id: str
    secret: str | None = None
    certificate_pem: str | None = None  # public certificate of a certificate credential
    roles: tuple[str, ...] = APP_ROLES  # granted application permissions (after admin consent)
    public: bool = False  # "allow public client flows" (device code)


@dataclass
class Token:
    client_id: str
    upn: str | None  # None: app-only token
    roles: tuple[str, ...]
    expires_at: float


@dataclass
class Identity:
    """Tenant, app registrations and issued tokens."""

    tenant: str  # a verified domain of the tenant, e.g. contoso.onmicrosoft.com
    tenant_id: str = "9188040d-6c67-4c5b-b112-36a304b66dad"  # the directory id (endpoints and tokens use it)
    root: str = ""  # https://127.0.0.1:PORT, set when the server starts
    apps: dict[str, AppRegistration] = field(default_factory=dict)
    tokens: dict[str, Token] = field(default_factory=dict)
    refresh_tokens: dict[str, tuple[str, str]] = field(default_factory=dict)  # token → (client_id, upn)
    device_codes: dict[str, list[Any]] = field(default_factory=dict)  # device_code → [client_id, polls, scope]
    device_user: str | None = None  # who "signs in" in the browser when a device flow is polled
    token_lifetime: int = 3599
    grants: list[str] = field(default_factory=list)  # grant_type of every successful token request

    def issuer(self) -> str:
        return f"{self.root}/{self.tenant_id}/v2.0"

    def token_endpoint(self) -> str:
        return f"{self.root}/{self.tenant_id}/oauth2/v2.0/token"

    def openid_configuration(self, tenant: str) -> tuple[int, dict[str, Any]]:
        """Asked for by domain or id, the metadata names the tenant by its id (as Entra ID does)."""
        if unquote(tenant).lower() not in (self.tenant.lower(), self.tenant_id):
            return 400, _oauth_error("invalid_tenant", 90002, f"Tenant '{tenant}' not found.")
        base = f"{self.root}/{self.tenant_id}/oauth2/v2.0"
        return 200, {
            "token_endpoint": f"{base}/token",
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "jwks_uri": f"{self.root}/{self.tenant_id}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": self.issuer(),
            "authorization_endpoint": f"{base}/authorize",
            "device_authorization_endpoint": f"{base}/devicecode",
            "end_session_endpoint": f"{base}/logout",
            "tenant_region_scope": "EU",
        }

    # --- token endpoint ----------------------------------------------------------------------------------

    def token_request(self, form: dict[str, str], authorization: str | None) -> tuple[int, dict[str, Any]]:
        client_id = form.get("client_id", "")
        if authorization and authorization.startswith("Basic "):
            user, _, password = base64.b64decode(authorization[6:]).decode().partition(":")
            client_id, form = unquote(user), {**form, "client_secret": unquote(password)}
        app = self.apps.get(client_id)
        if app is None:
            return 400, _oauth_error("unauthorized_client", 700016, f"Application with identifier '{client_id}' "
                                     "was not found in the directory.")  # fmt: skip
        grant = form.get("grant_type", "")
        if grant == "client_credentials":
            return self._client_credentials(app, form)
        if grant == _DEVICE_GRANT:
            return self._device_token(app, form)
        if grant == "refresh_token":
            owner = self.refresh_tokens.get(form.get("refresh_token", ""))
            if owner is None or owner[0] != app.client_id:
                return 400, _oauth_error("invalid_grant", 700082, "The refresh token has expired or was revoked.")
            return self._user_tokens(app, owner[1], "refresh_token", form.get("scope", ""))
        return 400, _oauth_error("unsupported_grant_type", 70003, f"The grant type {grant!r} is not supported.")

    def _client_credentials(self, app: AppRegistration, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if not form.get("scope", "").endswith("/.default"):
            text = "Client credential flows must have a scope value with /.default suffixed."
            return 400, _oauth_error("invalid_scope", 1002012, f"The provided value for scope is not valid. {text}")
        if form.get("client_assertion_type") == _ASSERTION:
            reason = self._bad_assertion(app, form.get("client_assertion", ""))
            if reason:
                return 401, _oauth_error("invalid_client", 700027, reason)
        elif app.secret is None or form.get("client_secret") != app.secret:
            return 401, _oauth_error("invalid_client", 7000215, "Invalid client secret provided.")
        access = secrets.token_urlsafe(24)
        self.tokens[access] = Token(app.client_id, None, app.roles, time.time() + self.token_lifetime)
        self.grants.append("client_credentials")
        return 200, {"token_type": "Bearer", "expires_in": self.token_lifetime,
                     "ext_expires_in": self.token_lifetime, "access_token": access}  # fmt: skip

    def _bad_assertion(self, app: AppRegistration, assertion: str) -> str | None:
        """Why a client assertion is refused ("certificate credentials": x5t#S256 + signature + aud + iss)."""
        if app.certificate_pem is None:
            return "Client assertion contains an invalid signature (no certificate registered)."
        cert = x509.load_pem_x509_certificate(app.certificate_pem.encode())
        from cryptography.hazmat.primitives import hashes

        expected = base64.urlsafe_b64encode(cert.fingerprint(hashes.SHA256())).decode().rstrip("=")
        if jwt.get_unverified_header(assertion).get("x5t#S256", "").rstrip("=") != expected:
            return "The certificate with identifier used to sign the client assertion is not registered."
        try:
            claims = jwt.decode(assertion, cert.public_key(), algorithms=["PS256", "RS256"],  # type: ignore[arg-type]
                                audience=self.token_endpoint())  # fmt: skip
        except jwt.PyJWTError as error:
            return f"Client assertion failed signature validation: {error}"
        return None if claims.get("iss") == claims.get("sub") == app.client_id else "Invalid issuer or subject."

    def start_device_flow(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        app = self.apps.get(form.get("client_id", ""))
        if app is None or not app.public:
            text = "The request body must contain client_assertion or client_secret (public client flows are off)."
            return 400, _oauth_error("invalid_client", 7000218, text)
        device_code, user_code = secrets.token_urlsafe(32), secrets.token_hex(4).upper()
        self.device_codes[device_code] = [app.client_id, 0, form.get("scope", "")]
        return 200, {
            "user_code": user_code,
            "device_code": device_code,
            "verification_uri": "https://microsoft.com/devicelogin",
            "expires_in": 900,
            "interval": 0,  # Entra says 5; 0 keeps MSAL's polling loop from sleeping in tests
            "message": "To sign in, use a web browser to open the page https://microsoft.com/devicelogin "
            f"and enter the code {user_code} to authenticate.",
        }

    def _device_token(self, app: AppRegistration, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        flow = self.device_codes.get(form.get("device_code", ""))
        if flow is None or flow[0] != app.client_id:
            return 400, _oauth_error("expired_token", 70020, "The provided value for device_code is expired.")
        flow[1] += 1
        if flow[1] < 2 or self.device_user is None:  # the user has not finished signing in yet
            return 400, _oauth_error("authorization_pending", 70016, "OAuth 2.0 device flow error. "
                                     "Authorization is pending. Continue polling.")  # fmt: skip
        return self._user_tokens(app, self.device_user, _DEVICE_GRANT, flow[2])  # the scope asked for at the start

    def _user_tokens(self, app: AppRegistration, upn: str, grant: str, scope: str) -> tuple[int, dict[str, Any]]:
        access, refresh = secrets.token_urlsafe(24), secrets.token_urlsafe(32)
        self.tokens[access] = Token(app.client_id, upn.lower(), (), time.time() + self.token_lifetime)
        self.refresh_tokens[refresh] = (app.client_id, upn.lower())
        self.grants.append(grant)
        oid = "00000000-0000-0000-66f3-3332eca7ea81"
        now = int(time.time())
        claims = {"aud": app.client_id, "iss": self.issuer(), "iat": now, "nbf": now, "exp": now + 3600,
                  "name": upn.partition("@")[0].title(), "oid": oid, "preferred_username": upn, "sub": "x",
                  "tid": self.tenant_id, "ver": "2.0"}  # fmt: skip
        id_token = ".".join(_b64(x) for x in ({"typ": "JWT", "alg": "none"}, claims)) + "."
        info = _b64({"uid": oid, "utid": claims["tid"]})
        scope = " ".join(s for s in scope.split() if s not in ("openid", "profile", "offline_access"))
        return 200, {"token_type": "Bearer", "scope": scope, "expires_in": self.token_lifetime,
                     "ext_expires_in": self.token_lifetime, "access_token": access, "refresh_token": refresh,
                     "id_token": id_token, "client_info": info}  # fmt: skip

    def revoke_refresh_tokens(self) -> None:
        """An admin revoked the user's sessions (``Revoke-MgUserSignInSession``)."""
        self.refresh_tokens.clear()


def _b64(value: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def _oauth_error(error: str, code: int, text: str) -> dict[str, Any]:
    return {
        "error": error,
        "error_description": f"AADSTS{code}: {text} Trace ID: 0000 Correlation ID: 0000 Timestamp: 2026-01-01",
        "error_codes": [code],
        "timestamp": "2026-01-01 00:00:00Z",
        "trace_id": "00000000-0000-0000-0000-000000000000",
        "correlation_id": "00000000-0000-0000-0000-000000000000",
    }
