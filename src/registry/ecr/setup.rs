//! The registry settings `ecr-retag doctor` reads ([`Setup`]), and Amazon Inspector's rescan
//! window. The function never calls these, and its role is not granted them:
//! examples/doctor-policy.json is the doctor's.

use aws_sdk_ecr::types::{ScanFrequency, ScanType as EcrScanType};

use super::{fault, registry_id, Ecr};
use crate::fault::{Fault, FaultKind};
use crate::registry::{Frequency, ReadError, Repository, ScanType, Setup};

impl Setup for Ecr {
    async fn scan_type(&self) -> Result<ScanType, ReadError> {
        let output = self.client.get_registry_scanning_configuration().send().await.map_err(|e| ReadError::Fault(fault(&e)))?;
        Ok(match output.scanning_configuration().and_then(|c| c.scan_type()) {
            Some(EcrScanType::Enhanced) => ScanType::Enhanced,
            _ => ScanType::Basic,
        })
    }

    async fn scan_frequency(&self, repository: &Repository) -> Result<Frequency, ReadError> {
        let request = self
            .client
            .batch_get_repository_scanning_configuration()
            .repository_names(repository.name.as_str());
        let output = send_read!(self, repository, request)?;
        let found = output.scanning_configurations().first().ok_or(ReadError::RepositoryNotFound)?;
        Ok(match found.scan_frequency() {
            Some(ScanFrequency::ContinuousScan) => Frequency::Continuous,
            Some(ScanFrequency::ScanOnPush) => Frequency::ScanOnPush,
            _ if found.scan_on_push() => Frequency::ScanOnPush,
            _ => Frequency::Manual,
        })
    }

    async fn lifecycle_policy(&self, repository: &Repository) -> Result<Option<String>, ReadError> {
        let request = self.client.get_lifecycle_policy().repository_name(repository.name.as_str()).set_registry_id(registry_id(repository));
        let output = send_read_or_absent!(self, repository, request, is_lifecycle_policy_not_found_exception)?;
        Ok(output.and_then(|o| o.lifecycle_policy_text().map(str::to_owned)))
    }

    async fn rescan_duration(&self) -> Result<Option<String>, ReadError> {
        let Some(sdk) = &self.sdk else {
            return Err(ReadError::Fault(Fault::new(FaultKind::Permanent, "NoConfiguration", "no SDK configuration to reach Amazon Inspector")));
        };
        // Built here, on the doctor's only call: the function never reaches Inspector.
        let inspector = aws_sdk_inspector2::Client::new(sdk);
        let output = inspector.get_configuration().send().await.map_err(|e| ReadError::Fault(fault(&e)))?;
        let state = output.ecr_configuration().and_then(|c| c.rescan_duration_state());
        Ok(state.and_then(|s| s.rescan_duration()).map(|d| d.as_str().to_owned()))
    }

    async fn pull_through_prefixes(&self) -> Result<Vec<String>, ReadError> {
        let mut prefixes = Vec::new();
        let mut page: Option<String> = None;
        loop {
            let output = self
                .client
                .describe_pull_through_cache_rules()
                .set_next_token(page.take())
                .send()
                .await
                .map_err(|e| ReadError::Fault(fault(&e)))?;
            prefixes.extend(output.pull_through_cache_rules().iter().filter_map(|r| r.ecr_repository_prefix()).map(str::to_owned));
            match output.next_token() {
                Some(next) => page = Some(next.to_owned()),
                None => return Ok(prefixes),
            }
        }
    }
}
