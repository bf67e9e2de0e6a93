//! The image build plan of a whole build: one BuildKit bake file
//! (`out/_images/docker-bake.json`) with a target per distinct image. Sites
//! whose Dockerfiles are byte-identical share one image, because the tag is
//! derived from the Dockerfile's sha256 and the Dify release; platforms are
//! the union of what those sites ask for.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use crate::base::source::sha256_hex;
use crate::emit::SiteTree;
use crate::model::Site;
use crate::plan::{BuiltKind, built_image_of_hash};

/// The directory (under the out directory) the image plan is written to.
/// Not a valid site name, so it can never collide with a site.
pub const IMAGES_DIR: &str = "_images";

/// One image to build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageBuild {
    pub target: String,
    pub kind: BuiltKind,
    /// `repository:tag`, as the sites' compose files and Helm values name it.
    pub reference: String,
    pub repository: String,
    pub release: String,
    pub dockerfile: Vec<u8>,
    pub dockerignore: Vec<u8>,
    pub platforms: BTreeSet<String>,
    pub sites: BTreeSet<String>,
}

fn kind_name(kind: BuiltKind) -> &'static str {
    match kind {
        BuiltKind::Api => "api",
        BuiltKind::Web => "web",
    }
}

/// The distinct images of the given sites, sorted by target name.
pub fn images(sites: &[(&Site, &SiteTree)]) -> Vec<ImageBuild> {
    let mut plan = ImagePlan::default();
    for (site, tree) in sites {
        plan.add(site, &tree.files);
    }
    plan.finish()
}

/// The image plan built site by site, so a build need not hold every
/// site's tree at once.
#[derive(Debug, Default)]
pub struct ImagePlan {
    by_ref: BTreeMap<String, ImageBuild>,
}

impl ImagePlan {
    /// Add the images of one site, from its rendered files.
    pub fn add(&mut self, site: &Site, files: &BTreeMap<String, Vec<u8>>) {
        for kind in [BuiltKind::Api, BuiltKind::Web] {
            let name = kind_name(kind);
            if let Some(dockerfile) = files.get(&format!("docker/{name}.Dockerfile")) {
                self.add_image(site, kind, &sha256_hex(dockerfile), || {
                    (
                        dockerfile.clone(),
                        files
                            .get(&format!("docker/{name}.Dockerfile.dockerignore"))
                            .cloned()
                            .unwrap_or_default(),
                    )
                });
            }
        }
    }

    fn add_image(
        &mut self,
        site: &Site,
        kind: BuiltKind,
        dockerfile_sha256: &str,
        load: impl FnOnce() -> (Vec<u8>, Vec<u8>),
    ) {
        let name = kind_name(kind);
        let image = built_image_of_hash(site, kind, dockerfile_sha256);
        let reference = format!("{}:{}", image.repository, image.tag);
        let hash = image.tag.rsplit('-').next().unwrap_or_default().to_string();
        let entry = self.by_ref.entry(reference.clone()).or_insert_with(|| {
            let (dockerfile, dockerignore) = load();
            ImageBuild {
                target: format!("{name}-{}-{hash}", site.dify_version.replace('.', "-")),
                kind,
                reference,
                repository: image.repository.clone(),
                release: site.dify_version.clone(),
                dockerfile,
                dockerignore,
                platforms: BTreeSet::new(),
                sites: BTreeSet::new(),
            }
        });
        entry.platforms.extend(site.build.platforms.iter().cloned());
        entry.sites.insert(site.name.clone());
    }

    /// The distinct images, sorted by target name. The same Dockerfile
    /// pushed to two registries is two images: their targets get the
    /// repository's hash appended, so that neither replaces the other.
    pub fn finish(self) -> Vec<ImageBuild> {
        let mut out: Vec<ImageBuild> = self.by_ref.into_values().collect();
        let mut count: BTreeMap<String, usize> = BTreeMap::new();
        for img in &out {
            *count.entry(img.target.clone()).or_default() += 1;
        }
        for img in &mut out {
            if count[&img.target] > 1 {
                img.target = format!(
                    "{}-{}",
                    img.target,
                    &sha256_hex(img.repository.as_bytes())[..8]
                );
            }
        }
        out.sort_by(|a, b| a.target.cmp(&b.target));
        out
    }
}

/// The files of `out/_images/`: the bake file, and each target's Dockerfile
/// with its `.dockerignore` beside it (BuildKit reads `X.Dockerfile.dockerignore`).
pub fn tree(images: &[ImageBuild]) -> SiteTree {
    let mut targets = serde_json::Map::new();
    for img in images {
        // Both images build from the repository root: the api's workspace
        // members and path sources, and the web's pnpm workspace, are there.
        let context = "${DIFY_SRC}";
        let cache = format!("{}:buildcache", img.repository);
        targets.insert(
            img.target.clone(),
            json!({
                "context": context,
                "dockerfile": format!("${{DIFY_CFG_IMAGES}}/{}.Dockerfile", img.target),
                "tags": [img.reference],
                "platforms": img.platforms.iter().collect::<Vec<_>>(),
                "labels": {
                    "org.opencontainers.image.version": img.release,
                    "org.opencontainers.image.revision": img.release,
                },
                "cache-from": [format!("type=registry,ref={cache}")],
                "cache-to": [format!("type=registry,ref={cache},mode=max")],
            }),
        );
    }
    let bake = json!({
        "variable": {
            // The root of a checkout of Dify at the pinned release.
            "DIFY_SRC": { "default": "dify" },
            // Absolute path of this directory: a bake `dockerfile` is
            // relative to its context, which is the Dify source.
            "DIFY_CFG_IMAGES": { "default": "" },
        },
        "group": {
            "default": { "targets": images.iter().map(|i| i.target.clone()).collect::<Vec<_>>() },
        },
        "target": Value::Object(targets),
    });
    let mut files = BTreeMap::new();
    let mut text = serde_json::to_vec_pretty(&bake).unwrap_or_default();
    text.push(b'\n');
    files.insert("docker-bake.json".to_string(), text);
    for img in images {
        files.insert(format!("{}.Dockerfile", img.target), img.dockerfile.clone());
        files.insert(
            format!("{}.Dockerfile.dockerignore", img.target),
            img.dockerignore.clone(),
        );
    }
    SiteTree {
        name: IMAGES_DIR.to_string(),
        files,
        ..SiteTree::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Target;

    fn site(name: &str, platforms: &[&str]) -> Site {
        let mut s = crate::plan::fixtures::edge();
        s.name = name.to_string();
        s.build.platforms = platforms.iter().map(|p| p.to_string()).collect();
        s
    }

    fn tree_with(name: &str, api: &str, web: &str) -> SiteTree {
        let mut files = BTreeMap::new();
        files.insert("docker/api.Dockerfile".to_string(), api.as_bytes().to_vec());
        files.insert("docker/web.Dockerfile".to_string(), web.as_bytes().to_vec());
        SiteTree {
            name: name.to_string(),
            files,
            ..SiteTree::default()
        }
    }

    #[test]
    fn identical_dockerfiles_share_one_target_and_platforms_unite() {
        let a = site("a", &["linux/amd64"]);
        let b = site("b", &["linux/arm64"]);
        let ta = tree_with("a", "FROM x\n", "FROM y\n");
        let tb = tree_with("b", "FROM x\n", "FROM y\n");
        let imgs = images(&[(&a, &ta), (&b, &tb)]);
        assert_eq!(imgs.len(), 2, "one api and one web target");
        for img in &imgs {
            assert_eq!(
                img.sites,
                BTreeSet::from(["a".to_string(), "b".to_string()])
            );
            assert_eq!(
                img.platforms,
                BTreeSet::from(["linux/amd64".to_string(), "linux/arm64".to_string()])
            );
        }
        assert!(a.target == Target::Compose);
    }

    #[test]
    fn one_dockerfile_for_two_registries_is_two_targets() {
        let a = site("a", &["linux/amd64"]);
        let mut b = site("b", &["linux/amd64"]);
        b.build.registry = "other.example.org/dify".into();
        let ta = tree_with("a", "FROM x\n", "FROM y\n");
        let tb = tree_with("b", "FROM x\n", "FROM y\n");
        let imgs = images(&[(&a, &ta), (&b, &tb)]);
        assert_eq!(imgs.len(), 4, "an api and a web target per registry");
        let bake: serde_json::Value =
            serde_json::from_slice(&tree(&imgs).files["docker-bake.json"]).unwrap();
        let targets = bake["target"].as_object().unwrap();
        assert_eq!(targets.len(), 4);
        let tags: BTreeSet<&str> = targets
            .values()
            .map(|t| t["tags"][0].as_str().unwrap())
            .collect();
        assert_eq!(tags.len(), 4, "{tags:?}");
    }

    #[test]
    fn a_different_dockerfile_is_another_target() {
        let a = site("a", &["linux/amd64"]);
        let b = site("b", &["linux/amd64"]);
        let ta = tree_with("a", "FROM x\n", "FROM y\n");
        let tb = tree_with("b", "FROM x2\n", "FROM y\n");
        let imgs = images(&[(&a, &ta), (&b, &tb)]);
        let api: Vec<_> = imgs.iter().filter(|i| i.kind == BuiltKind::Api).collect();
        assert_eq!(api.len(), 2);
        assert_ne!(api[0].reference, api[1].reference);
        let bake: serde_json::Value =
            serde_json::from_slice(&tree(&imgs).files["docker-bake.json"]).unwrap();
        assert_eq!(
            bake["group"]["default"]["targets"]
                .as_array()
                .unwrap()
                .len(),
            3
        );
        for img in &imgs {
            assert_eq!(bake["target"][&img.target]["tags"][0], img.reference);
        }
    }
}
