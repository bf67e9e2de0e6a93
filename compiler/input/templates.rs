//! The built-in templates, compiled into the binary; a config root's own
//! `templates/` directory overrides them file by file. Names are the ones
//! the planner asks for (see `plan::TEMPLATE_NAMES`).
pub const BUILTIN_TEMPLATES: &[(&str, &str)] = &[
    ("agent.conf", include_str!("../../templates/agent.conf")),
    (
        "api.Dockerfile",
        include_str!("../../templates/api.Dockerfile"),
    ),
    (
        "api.Dockerfile.dockerignore",
        include_str!("../../templates/api.Dockerfile.dockerignore"),
    ),
    (
        "application.yaml",
        include_str!("../../templates/application.yaml"),
    ),
    ("apply.sh", include_str!("../../templates/apply.sh")),
    ("compose.yaml", include_str!("../../templates/compose.yaml")),
    (
        "dify-cfg-firewall.service",
        include_str!("../../templates/dify-cfg-firewall.service"),
    ),
    (
        "dify-cfg-pull.service",
        include_str!("../../templates/dify-cfg-pull.service"),
    ),
    (
        "dify-cfg-pull.timer",
        include_str!("../../templates/dify-cfg-pull.timer"),
    ),
    ("dify.env", include_str!("../../templates/dify.env")),
    ("nginx.conf", include_str!("../../templates/nginx.conf")),
    ("rules.v4", include_str!("../../templates/rules.v4")),
    ("rules.v6", include_str!("../../templates/rules.v6")),
    ("squid.conf", include_str!("../../templates/squid.conf")),
    ("values.yaml", include_str!("../../templates/values.yaml")),
    (
        "web.Dockerfile",
        include_str!("../../templates/web.Dockerfile"),
    ),
    (
        "web.Dockerfile.dockerignore",
        include_str!("../../templates/web.Dockerfile.dockerignore"),
    ),
];
