//! The typed `Function` (flotilla.dev/v1): a serverless HTTP function. Its schema, defaults
//! and validation live with the other kinds' (`schema`, `defaults`, `validation`); this type
//! is for the components that act on Functions (the gateway and `flotilla function`), so
//! they can use them as they use k8s-openapi's kinds, informers and typed `Api`s included.

use k8s_openapi::api::core::v1::{EnvVar, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta};
use serde::{Deserialize, Serialize};

/// The label every pod of a Function carries, with the Function's name.
pub const FUNCTION_LABEL: &str = "flotilla.dev/function";

/// A serverless HTTP function.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Function {
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: FunctionSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<FunctionStatus>,
}

/// What a function runs and how it scales. Unset numbers take [`crate::defaults::FUNCTION_DEFAULTS`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionSpec {
    #[serde(default)]
    pub image: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<EnvVar>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_scale: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_scale: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
}

impl FunctionSpec {
    fn number(value: Option<i32>, field: &str) -> i32 {
        value.unwrap_or_else(|| {
            let default = crate::defaults::FUNCTION_DEFAULTS
                .iter()
                .find(|(name, _)| *name == field)
                .map_or(0, |(_, value)| *value);
            i32::try_from(default).unwrap_or(0)
        })
    }

    pub fn min_scale(&self) -> i32 {
        Self::number(self.min_scale, "minScale").max(0)
    }

    pub fn max_scale(&self) -> i32 {
        Self::number(self.max_scale, "maxScale")
            .max(self.min_scale())
            .max(1)
    }

    pub fn concurrency(&self) -> i32 {
        Self::number(self.concurrency, "concurrency").max(1)
    }

    pub fn timeout_seconds(&self) -> i32 {
        Self::number(self.timeout_seconds, "timeoutSeconds").max(1)
    }
}

/// Where a function answers and how it is scaled.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_instances: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instances: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_instances: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Condition>>,
}

impl k8s_openapi::Resource for Function {
    const API_VERSION: &'static str = "flotilla.dev/v1";
    const GROUP: &'static str = "flotilla.dev";
    const KIND: &'static str = "Function";
    const VERSION: &'static str = "v1";
    const URL_PATH_SEGMENT: &'static str = "functions";
    type Scope = k8s_openapi::NamespaceResourceScope;
}

impl k8s_openapi::Metadata for Function {
    type Ty = ObjectMeta;

    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl k8s_openapi::ListableResource for Function {
    const LIST_KIND: &'static str = "FunctionList";
}
