//! The token endpoint calls the gateway makes as an OAuth client (RFC 6749 §4.1.3 and §6,
//! RFC 7009): used by the callback (code exchange) and by the subject stores (refresh,
//! revocation). It sits on the one outbound client; the requests and answers are `core::oauth`.

use crate::core::config::Config;
use crate::core::oauth::token::{
    parse_token_response, revocation_request, token_request, ClientAuth, Grant, TokenOutcome, TokenRequest,
};
use crate::core::secret::Secret;
use crate::outbound::{oauth_request, Answer, OAuthRequest, OutboundError};
use worker::Method;

/// OAuth endpoint calls get at most this long, whatever the upstream timeout (a subject store
/// holds its other requests while it refreshes).
pub fn oauth_timeout(config: &Config) -> u64 {
    config.upstream_timeout_ms.min(10_000)
}

/// Calls a token endpoint; `Err` when it could not be reached or its answer not read.
pub async fn token_call(
    config: &Config,
    client: &ClientAuth,
    token_endpoint: &str,
    grant: &Grant<'_>,
) -> Result<TokenOutcome, OutboundError> {
    let answer = post_form(config, token_endpoint, token_request(grant, client)).await?;
    Ok(parse_token_response(answer.status, &answer.content_type, &answer.body))
}

/// RFC 7009 revocation; true when the server accepted it.
pub async fn revoke(
    config: &Config,
    client: &ClientAuth,
    endpoint: &str,
    token: &Secret,
    hint: &str,
) -> bool {
    let answer = post_form(config, endpoint, revocation_request(token, hint, client)).await;
    matches!(answer, Ok(a) if a.status == 200)
}

/// A form POST with client authentication to a token or revocation endpoint.
async fn post_form(config: &Config, endpoint: &str, req: TokenRequest) -> Result<Answer, OutboundError> {
    let request = OAuthRequest {
        method: Method::Post,
        url: endpoint,
        content_type: Some("application/x-www-form-urlencoded"),
        authorization: req.authorization.as_deref(),
        body: Some(req.body),
    };
    oauth_request(request, config.allow_private_upstreams, oauth_timeout(config)).await
}
