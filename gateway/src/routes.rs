//! The REST route table, read from the `google.api.http` annotations of the descriptor
//! set. Nothing here is written per RPC: a new annotated RPC is a new route.

use http::Method;
use prost_reflect::{DescriptorPool, MethodDescriptor, Value};

use crate::template::PathTemplate;
use festival_proto::google::api::{HttpRule, http_rule::Pattern};

/// Which part of the request the HTTP body fills.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyRule {
    /// No body; every field not in the path comes from the query string.
    None,
    /// `body: "*"`: the whole request message, minus path fields.
    All,
    /// `body: "field"`: that field; the rest from the query string.
    Field(String),
}

#[derive(Debug, Clone)]
pub struct Route {
    pub http_method: Method,
    pub template: PathTemplate,
    pub body: BodyRule,
    /// `response_body`: the response field sent as the HTTP body (whole message if `None`).
    pub response_body: Option<String>,
    pub method: MethodDescriptor,
}

impl Route {
    /// `/package.Service/Method`.
    pub fn grpc_path(&self) -> String {
        format!("/{}/{}", self.method.parent_service().full_name(), self.method.name())
    }

    pub fn is_server_streaming(&self) -> bool {
        self.method.is_server_streaming()
    }
}

pub enum Lookup<'a> {
    Found(&'a Route, Vec<(String, String)>),
    /// The path exists for other HTTP methods.
    MethodNotAllowed(Vec<Method>),
    NotFound,
}

#[derive(Debug, Default)]
pub struct RouteTable {
    routes: Vec<Route>,
}

impl RouteTable {
    /// Every annotated method of every service `include` accepts (those with an upstream).
    pub fn build(pool: &DescriptorPool, include: impl Fn(&str) -> bool) -> anyhow::Result<Self> {
        let Some(http_ext) = pool.get_extension_by_name("google.api.http") else {
            return Ok(Self::default());
        };
        let mut routes = Vec::new();
        for service in pool.services().filter(|s| include(s.full_name())) {
            for method in service.methods() {
                let options = method.options();
                if !options.has_extension(&http_ext) {
                    continue;
                }
                let Value::Message(rule) = options.get_extension(&http_ext).into_owned() else { continue };
                let rule: HttpRule = rule.transcode_to()?;
                let mut rules = vec![rule.clone()];
                rules.extend(rule.additional_bindings.iter().cloned());
                for r in rules {
                    routes.push(route(&method, &r).map_err(|e| anyhow::anyhow!("{}: {e}", method.full_name()))?);
                }
            }
        }
        // Most specific first, so `/v1/festivals/current` wins over `/v1/festivals/{id}`.
        routes.sort_by_key(|r| std::cmp::Reverse(r.template.specificity()));
        Ok(Self { routes })
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    pub fn lookup(&self, method: &Method, path: &str) -> Lookup<'_> {
        let mut allowed = Vec::new();
        for route in &self.routes {
            if let Some(bindings) = route.template.matches(path) {
                if route.http_method == *method {
                    return Lookup::Found(route, bindings);
                }
                allowed.push(route.http_method.clone());
            }
        }
        if allowed.is_empty() { Lookup::NotFound } else { Lookup::MethodNotAllowed(allowed) }
    }

    /// The path as logs and traces may show it: the route's template (`/v1/calendars/{token}`)
    /// when a path variable is a secret by its name, else the path itself.
    /// Whatever the HTTP method: a calendar app probing with HEAD or OPTIONS must not log
    /// the secret either.
    pub fn loggable_path(&self, path: &str) -> String {
        for route in &self.routes {
            if let Some(bindings) = route.template.matches(path)
                && bindings.iter().any(|(name, _)| festival_platform::telemetry::is_sensitive_key(name))
            {
                return route.template.as_str().to_owned();
            }
        }
        path.to_owned()
    }
}

fn route(method: &MethodDescriptor, rule: &HttpRule) -> anyhow::Result<Route> {
    let (http_method, template) = match rule.pattern.as_ref() {
        Some(Pattern::Get(t)) => (Method::GET, t),
        Some(Pattern::Post(t)) => (Method::POST, t),
        Some(Pattern::Put(t)) => (Method::PUT, t),
        Some(Pattern::Delete(t)) => (Method::DELETE, t),
        Some(Pattern::Patch(t)) => (Method::PATCH, t),
        Some(Pattern::Custom(c)) => (Method::from_bytes(c.kind.as_bytes())?, &c.path),
        None => anyhow::bail!("http rule without a pattern"),
    };
    let template = PathTemplate::parse(template)?;
    let input = method.input();
    for var in template.variables() {
        anyhow::ensure!(
            crate::transcode::resolve(&input, &var).is_some(),
            "path variable {var} is not a request field"
        );
    }
    let body = match rule.body.as_str() {
        "" => BodyRule::None,
        "*" => BodyRule::All,
        field => {
            anyhow::ensure!(input.get_field_by_name(field).is_some(), "body field {field} is not a request field");
            BodyRule::Field(field.to_owned())
        }
    };
    let response_body = match rule.response_body.as_str() {
        "" => None,
        field => {
            anyhow::ensure!(
                method.output().get_field_by_name(field).is_some(),
                "response_body {field} is not a response field"
            );
            Some(field.to_owned())
        }
    };
    Ok(Route { http_method, template, body, response_body, method: method.clone() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_with_a_secret_variable_are_logged_as_their_route() {
        let pool = DescriptorPool::decode(festival_proto::FILE_DESCRIPTOR_SET).expect("descriptors");
        let table = RouteTable::build(&pool, |_| true).expect("routes");
        assert!(!table.routes().is_empty());
        let secret = "q3Jx0sZ7fP2mNc8Lw4Hv9TbYkDe1GaRuXiOo6SjVn5A";
        assert_eq!(table.loggable_path(&format!("/v1/calendars/{secret}.ics")), "/v1/calendars/{token}");
        assert_eq!(table.loggable_path("/v1/festivals/hellfest-2027"), "/v1/festivals/hellfest-2027");
        assert_eq!(table.loggable_path("/no/such/route"), "/no/such/route");
    }
}
