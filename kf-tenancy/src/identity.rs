//! Who is calling: identity from a trusted proxy's headers, a bearer JWT, or a
//! static API token — and nothing else.
//!
//! The rules follow Kubeflow's own security history. Identity headers
//! (`kubeflow-userid`, `kubeflow-groups`) are believed only when the TCP peer is
//! one of the configured proxies; from anyone else they are ignored, because
//! any pod in the cluster can set them (kubeflow#6702). A request that presents
//! a bearer token is judged by that token alone: a bad token is a rejection,
//! never a fall-back to headers. Everything else is anonymous.

use std::collections::HashMap;
use std::net::IpAddr;

use http::header::GetAll;
use http::{HeaderMap, HeaderName, HeaderValue};
use ipnet::IpNet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::subject::{Identity, Principal};
use crate::{Error, Result};

/// The outcome of authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authentication {
    /// A verified identity.
    Authenticated(Identity),
    /// No credentials (or headers from an untrusted peer, which are ignored).
    Anonymous,
    /// Credentials were presented and are not valid; the reason is for logs only.
    Rejected(String),
}

/// Identity headers set by an authenticating proxy (oauth2-proxy, Istio with
/// Dex), believed only from the proxies listed here.
#[derive(Debug, Clone)]
pub struct ProxyTrust {
    proxies: Vec<IpNet>,
    user_header: HeaderName,
    groups_header: HeaderName,
    user_prefix: String,
}

impl ProxyTrust {
    /// Trusts the given proxy addresses/CIDRs with Kubeflow's default headers
    /// `kubeflow-userid` and `kubeflow-groups` and no user prefix.
    pub fn new(proxies: impl IntoIterator<Item = IpNet>) -> Self {
        ProxyTrust {
            proxies: proxies.into_iter().collect(),
            user_header: HeaderName::from_static("kubeflow-userid"),
            groups_header: HeaderName::from_static("kubeflow-groups"),
            user_prefix: String::new(),
        }
    }

    /// Parses proxy addresses or CIDRs such as `10.0.0.7` or `10.0.0.0/24`.
    pub fn parse(proxies: &[&str]) -> Result<Self> {
        let nets = proxies
            .iter()
            .enumerate()
            .map(|(i, p)| {
                p.parse::<IpNet>().or_else(|_| p.parse::<IpAddr>().map(IpNet::from)).map_err(|_| Error::Invalid {
                    path: format!("trustedProxies[{i}]"),
                    message: format!("expected an IP address or CIDR, found {p:?}"),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self::new(nets))
    }

    /// Uses other header names (case-insensitive).
    pub fn with_headers(mut self, user: &str, groups: &str) -> Result<Self> {
        let parse = |field: &str, name: &str| {
            HeaderName::from_bytes(name.as_bytes()).map_err(|_| Error::Invalid {
                path: field.into(),
                message: format!("expected an HTTP header name, found {name:?}"),
            })
        };
        self.user_header = parse("userHeader", user)?;
        self.groups_header = parse("groupsHeader", groups)?;
        Ok(self)
    }

    /// Strips this prefix from the user header (e.g. `accounts.google.com:`).
    pub fn with_user_prefix(mut self, prefix: &str) -> Self {
        self.user_prefix = prefix.to_string();
        self
    }

    /// Whether `peer` is a configured proxy. IPv4-mapped IPv6 addresses count
    /// as their IPv4 address.
    pub fn trusts(&self, peer: IpAddr) -> bool {
        let peer = match peer {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(peer, IpAddr::V4),
            v4 => v4,
        };
        self.proxies.iter().any(|net| net.contains(&peer))
    }

    /// The identity the headers carry, if `peer` is trusted and the user header
    /// is present and non-empty. O(proxies + header length).
    pub fn identify(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<Identity> {
        self.claim(peer, headers).map(|claim| claim.to_identity())
    }

    /// What [`ProxyTrust::identify`] reads, still borrowed from the headers.
    pub(crate) fn claim<'h>(&self, peer: Option<IpAddr>, headers: &'h HeaderMap) -> Option<ProxyClaim<'h>> {
        if !peer.is_some_and(|p| self.trusts(p)) {
            return None;
        }
        let header = headers.get(&self.user_header)?;
        // `to_str` admits only visible ASCII, space and tab, so ASCII trimming
        // is all trimming there is, without decoding chars.
        let value = header.to_str().ok()?;
        let raw = value.trim_ascii();
        let user = raw.strip_prefix(self.user_prefix.as_str()).unwrap_or(raw).trim_ascii();
        if user.is_empty() {
            return None;
        }
        let groups = headers.get_all(&self.groups_header);
        let groups = groups.iter().next().is_some().then_some(groups);
        // `user` is a subslice of `value`.
        let start = user.as_ptr() as usize - value.as_ptr() as usize;
        Some(ProxyClaim { header, user, start, groups })
    }
}

/// An identity read from trusted proxy headers, borrowed from them.
#[derive(Debug)]
pub(crate) struct ProxyClaim<'h> {
    /// The user header's value.
    pub header: &'h HeaderValue,
    /// The user name: `header`'s bytes from `start`, prefix and blanks removed.
    pub user: &'h str,
    /// Where `user` starts in `header`.
    pub start: usize,
    /// The groups header's values if there are any, parsed where they are
    /// read: most callers send none, and the policy reads them at most twice.
    pub groups: Option<GetAll<'h, HeaderValue>>,
}

impl ProxyClaim<'_> {
    pub fn to_identity(&self) -> Identity {
        Identity { user: self.user.to_string(), groups: self.group_names() }
    }
}

impl ProxyClaim<'_> {
    /// The group names, owned (no allocation when there are none).
    pub fn group_names(&self) -> Vec<String> {
        match self.groups {
            Some(_) => self.groups().map(str::to_string).collect(),
            None => Vec::new(),
        }
    }
}

impl Principal for ProxyClaim<'_> {
    fn user(&self) -> &str {
        self.user
    }

    /// Comma-separated names over all the header's values, blanks trimmed,
    /// empty names and values that are not visible ASCII skipped.
    fn groups(&self) -> impl Iterator<Item = &str> {
        self.groups
            .iter()
            .flat_map(GetAll::iter)
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim_ascii)
            .filter(|g| !g.is_empty())
    }
}

/// A key that may sign bearer JWTs.
#[derive(Clone)]
pub struct VerificationKey {
    kid: Option<String>,
    algorithm: Algorithm,
    key: DecodingKey,
}

impl std::fmt::Debug for VerificationKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerificationKey").field("kid", &self.kid).field("algorithm", &self.algorithm).finish()
    }
}

impl VerificationKey {
    /// A shared HMAC secret (HS256).
    pub fn hs256(secret: &[u8]) -> Self {
        VerificationKey { kid: None, algorithm: Algorithm::HS256, key: DecodingKey::from_secret(secret) }
    }

    /// An RSA public key in PEM (RS256).
    pub fn rs256_pem(pem: &[u8]) -> Result<Self> {
        let key = DecodingKey::from_rsa_pem(pem).map_err(|e| key_error("RS256", e))?;
        Ok(VerificationKey { kid: None, algorithm: Algorithm::RS256, key })
    }

    /// A P-256 public key in PEM (ES256).
    pub fn es256_pem(pem: &[u8]) -> Result<Self> {
        let key = DecodingKey::from_ec_pem(pem).map_err(|e| key_error("ES256", e))?;
        Ok(VerificationKey { kid: None, algorithm: Algorithm::ES256, key })
    }

    /// Only tokens whose header names this key id use this key.
    pub fn with_kid(mut self, kid: &str) -> Self {
        self.kid = Some(kid.to_string());
        self
    }
}

fn key_error(kind: &str, err: jsonwebtoken::errors::Error) -> Error {
    Error::Invalid { path: "jwt.keys".into(), message: format!("not a usable {kind} public key: {err}") }
}

/// Verifies bearer JWTs: signature by a configured key of the token's own
/// algorithm (no `none`, no algorithm confusion), issuer, audience and expiry.
#[derive(Debug, Clone)]
pub struct JwtVerifier {
    keys: Vec<VerificationKey>,
    issuer: String,
    audience: String,
    user_claim: String,
    groups_claim: String,
    leeway_seconds: u64,
}

impl JwtVerifier {
    /// Accepts tokens from `issuer` for `audience`, signed by one of `keys`.
    /// The user is the `email` claim (falling back to `sub`), groups the
    /// `groups` claim.
    pub fn new(issuer: &str, audience: &str, keys: Vec<VerificationKey>) -> Self {
        JwtVerifier {
            keys,
            issuer: issuer.into(),
            audience: audience.into(),
            user_claim: "email".into(),
            groups_claim: "groups".into(),
            leeway_seconds: 30,
        }
    }

    /// Reads the user and groups from other claims.
    pub fn with_claims(mut self, user: &str, groups: &str) -> Self {
        self.user_claim = user.into();
        self.groups_claim = groups.into();
        self
    }

    /// Verifies a compact JWT and returns the identity it carries.
    pub fn verify(&self, token: &str) -> std::result::Result<Identity, String> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| format!("malformed token: {e}"))?;
        let candidates = self
            .keys
            .iter()
            .filter(|k| k.algorithm == header.alg)
            .filter(|k| k.kid.is_none() || header.kid.is_none() || k.kid == header.kid);
        let mut last_error = format!("no key for algorithm {:?}", header.alg);
        for key in candidates {
            let mut validation = Validation::new(key.algorithm);
            validation.set_issuer(&[&self.issuer]);
            validation.set_audience(&[&self.audience]);
            validation.set_required_spec_claims(&["exp", "iss", "aud"]);
            validation.leeway = self.leeway_seconds;
            match jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(token, &key.key, &validation) {
                Ok(data) => return self.identity_from_claims(&data.claims),
                Err(err) => last_error = err.to_string(),
            }
        }
        Err(last_error)
    }

    fn identity_from_claims(
        &self,
        claims: &serde_json::Map<String, serde_json::Value>,
    ) -> std::result::Result<Identity, String> {
        let user = [self.user_claim.as_str(), "sub"]
            .iter()
            .find_map(|c| claims.get(*c).and_then(|v| v.as_str()).filter(|s| !s.is_empty()))
            .ok_or_else(|| format!("token has no {:?} or \"sub\" claim", self.user_claim))?;
        let groups = match claims.get(&self.groups_claim) {
            None => Vec::new(),
            Some(serde_json::Value::Array(items)) => {
                items.iter().filter_map(|g| g.as_str()).map(str::to_string).collect()
            }
            Some(_) => return Err(format!("claim {:?} is not a list of strings", self.groups_claim)),
        };
        Ok(Identity { user: user.to_string(), groups })
    }
}

/// Static API tokens for automation. Only SHA-256 digests are kept, compared
/// in constant time.
#[derive(Debug, Clone, Default)]
pub struct ApiTokens {
    by_digest: HashMap<[u8; 32], Identity>,
}

impl ApiTokens {
    /// No tokens.
    pub fn new() -> Self {
        Self::default()
    }

    /// Lets `token` act as `identity`.
    pub fn insert(&mut self, token: &str, identity: Identity) {
        self.by_digest.insert(Sha256::digest(token.as_bytes()).into(), identity);
    }

    /// The identity of `token`, if it is one of ours.
    pub fn lookup(&self, token: &str) -> Option<&Identity> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        // Hash lookup on the digest leaks nothing useful about the token; the
        // final comparison is constant-time anyway.
        self.by_digest.get_key_value(&digest).filter(|(k, _)| bool::from(k.ct_eq(&digest))).map(|(_, id)| id)
    }
}

/// Everything that can vouch for a caller, in order: bearer token (API token,
/// then JWT), then trusted-proxy headers.
#[derive(Debug, Clone, Default)]
pub struct Authenticator {
    proxy: Option<ProxyTrust>,
    jwt: Option<JwtVerifier>,
    tokens: ApiTokens,
}

impl Authenticator {
    /// Trusts nobody: every request is anonymous.
    pub fn new() -> Self {
        Self::default()
    }

    /// Believes identity headers from these proxies.
    pub fn with_proxy(mut self, proxy: ProxyTrust) -> Self {
        self.proxy = Some(proxy);
        self
    }

    /// Accepts bearer JWTs.
    pub fn with_jwt(mut self, jwt: JwtVerifier) -> Self {
        self.jwt = Some(jwt);
        self
    }

    /// Accepts static API tokens.
    pub fn with_tokens(mut self, tokens: ApiTokens) -> Self {
        self.tokens = tokens;
        self
    }

    /// Authenticates one request from its TCP peer and headers.
    pub fn authenticate(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Authentication {
        match self.credential(peer, headers) {
            Credential::Proxy(claim) => Authentication::Authenticated(claim.to_identity()),
            Credential::Checked(authentication) => authentication,
        }
    }

    /// [`Authenticator::authenticate`], leaving an identity from proxy
    /// headers borrowed.
    pub(crate) fn credential<'h>(&self, peer: Option<IpAddr>, headers: &'h HeaderMap) -> Credential<'h> {
        if let Some(value) = headers.get(http::header::AUTHORIZATION) {
            let Some(token) = value.to_str().ok().and_then(bearer_token) else {
                return Credential::Checked(Authentication::Rejected(
                    "Authorization header is not `Bearer <token>`".into(),
                ));
            };
            if let Some(identity) = self.tokens.lookup(token) {
                return Credential::Checked(Authentication::Authenticated(identity.clone()));
            }
            return Credential::Checked(match &self.jwt {
                Some(jwt) => match jwt.verify(token) {
                    Ok(identity) => Authentication::Authenticated(identity),
                    Err(reason) => Authentication::Rejected(reason),
                },
                None => Authentication::Rejected("unknown API token".into()),
            });
        }
        match self.proxy.as_ref().and_then(|p| p.claim(peer, headers)) {
            Some(claim) => Credential::Proxy(claim),
            None => Credential::Checked(Authentication::Anonymous),
        }
    }
}

/// An [`Authentication`], or an identity from proxy headers still borrowed.
pub(crate) enum Credential<'h> {
    /// Trusted proxy headers.
    Proxy(ProxyClaim<'h>),
    /// Everything else: a token's identity, anonymous, or rejected.
    Checked(Authentication),
}

fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(*k, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn headers_count_only_from_trusted_proxies() {
        let trust = ProxyTrust::parse(&["10.0.0.0/24", "192.168.1.5"]).unwrap();
        let h = headers(&[("kubeflow-userid", "alice@example.com"), ("kubeflow-groups", "ml, ops,,")]);
        let alice = trust.identify(ip("10.0.0.9"), &h).unwrap();
        assert_eq!(alice.user, "alice@example.com");
        assert_eq!(alice.groups, ["ml", "ops"]);
        assert!(trust.identify(ip("192.168.1.5"), &h).is_some());
        assert!(trust.identify(ip("::ffff:10.0.0.9"), &h).is_some(), "IPv4-mapped peers are their IPv4 address");
        for spoofer in ["10.0.1.9", "192.168.1.6", "127.0.0.1", "::1"] {
            assert_eq!(trust.identify(ip(spoofer), &h), None, "{spoofer} is not a proxy");
        }
        assert_eq!(trust.identify(None, &h), None, "unknown peer is untrusted");
    }

    #[test]
    fn prefix_and_header_names_are_configurable() {
        let trust = ProxyTrust::parse(&["127.0.0.1"])
            .unwrap()
            .with_headers("X-Goog-Authenticated-User-Email", "x-groups")
            .unwrap()
            .with_user_prefix("accounts.google.com:");
        let h = headers(&[("x-goog-authenticated-user-email", "accounts.google.com:bob@example.com")]);
        assert_eq!(trust.identify(ip("127.0.0.1"), &h).unwrap().user, "bob@example.com");
        let empty = headers(&[("x-goog-authenticated-user-email", "accounts.google.com:")]);
        assert_eq!(trust.identify(ip("127.0.0.1"), &empty), None);
    }

    #[test]
    fn bad_proxy_config_is_an_error_naming_the_entry() {
        let err = ProxyTrust::parse(&["10.0.0.1", "not-an-ip"]).unwrap_err();
        assert!(err.to_string().starts_with("trustedProxies[1]:"), "{err}");
        let err = ProxyTrust::new([]).with_headers("bad header", "ok").unwrap_err();
        assert!(err.to_string().starts_with("userHeader:"), "{err}");
    }

    #[test]
    fn api_tokens_authenticate_and_a_bad_bearer_never_falls_back() {
        let mut tokens = ApiTokens::new();
        tokens.insert("s3cret-token", Identity::user("ci-bot"));
        let authn = Authenticator::new().with_tokens(tokens).with_proxy(ProxyTrust::parse(&["127.0.0.1"]).unwrap());
        let ok = authn.authenticate(ip("1.2.3.4"), &headers(&[("authorization", "Bearer s3cret-token")]));
        assert_eq!(ok, Authentication::Authenticated(Identity::user("ci-bot")));
        let spoof = headers(&[("authorization", "Bearer wrong"), ("kubeflow-userid", "admin")]);
        assert!(matches!(authn.authenticate(ip("127.0.0.1"), &spoof), Authentication::Rejected(_)));
        let basic = headers(&[("authorization", "Basic YWxpY2U6cHc=")]);
        assert!(matches!(authn.authenticate(ip("127.0.0.1"), &basic), Authentication::Rejected(_)));
        assert_eq!(authn.authenticate(ip("127.0.0.1"), &HeaderMap::new()), Authentication::Anonymous);
    }
}
