//! [`Sharing`]: the equal parts of a fleet's valid sites (and their
//! defaults) held once.

use std::collections::BTreeMap;

use ipnet::IpNet;

use super::ValidSite;
use crate::model::*;

/// What the valid sites of a fleet have in common, held once: one [`Pool`]
/// per [`Shared`] part of a site. Every site `share`d through the same
/// `Sharing` points at one allocation per distinct value.
#[derive(Default)]
pub struct Sharing {
    /// Profile chains and route prefixes.
    strings: Pool<Vec<String>>,
    images: Pool<Images>,
    build: Pool<Build>,
    services: Pool<BTreeMap<ServiceKind, Service>>,
    database: Pool<Database>,
    redis: Pool<Redis>,
    helm: Pool<Helm>,
    /// `[env]`.
    env: Pool<BTreeMap<String, String>>,
    secrets: Pool<BTreeMap<String, SecretRef>>,
    gitops: Pool<Gitops>,
    /// Admin and SSH networks.
    networks: Pool<Vec<IpNet>>,
    egress: Pool<Vec<Egress>>,
    defaults: Pool<(String, String)>,
}

impl Sharing {
    /// Point every shared part of `v` at the equal value an earlier site
    /// has, if one has it.
    pub fn share(&mut self, v: &mut ValidSite) {
        let site = &mut v.site;
        self.strings.share(&mut site.profile_chain);
        self.images.share(&mut site.images);
        self.build.share(&mut site.build);
        self.services.share(&mut site.services);
        self.database.share(&mut site.database);
        self.redis.share(&mut site.redis);
        self.helm.share(&mut site.helm);
        self.env.share(&mut site.env);
        self.secrets.share(&mut site.secrets);
        self.gitops.share(&mut site.gitops);
        let network = &mut site.network;
        self.networks.share(&mut network.admin);
        self.networks.share(&mut network.ssh_from);
        self.strings.share(&mut network.public_routes);
        self.egress.share(&mut network.egress);
        for d in &mut v.defaults {
            self.defaults.share(d);
        }
    }
}
