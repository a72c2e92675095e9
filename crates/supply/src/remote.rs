//! The supply service across processes: `serve` answers `rpc.supply.report_driver` with a local
//! `SupplyService`; `RemoteSupply` is the gateway's `SupplyApi` that calls it.

use async_trait::async_trait;
use domain::{CarNumber, DriverReport, PersonName, Point};
use platform::rpc::{self, RpcClient};
use platform::{ApiError, Shutdown};
use serde::{Deserialize, Serialize};

use crate::{SupplyApi, SupplyError, SupplyService};

pub const REPORT_DRIVER: &str = "rpc.supply.report_driver";
const GROUP: &str = "supply";

#[derive(Serialize, Deserialize)]
struct ReportDriver {
    driver: PersonName,
    car_number: CarNumber,
    position: Point,
}

pub async fn serve(
    service: SupplyService,
    client: async_nats::Client,
    shutdown: &Shutdown,
) -> Result<(), ApiError> {
    rpc::serve(
        client,
        REPORT_DRIVER,
        GROUP,
        shutdown,
        move |r: ReportDriver| {
            let service = service.clone();
            async move {
                service
                    .report_driver(r.driver, r.car_number, r.position)
                    .await
                    .map_err(ApiError::from)
            }
        },
    )
    .await
}

#[derive(Clone, Debug)]
pub struct RemoteSupply {
    rpc: RpcClient,
}

impl RemoteSupply {
    pub fn new(rpc: RpcClient) -> Self {
        Self { rpc }
    }
}

#[async_trait]
impl SupplyApi for RemoteSupply {
    async fn report_driver(
        &self,
        driver: PersonName,
        car_number: CarNumber,
        position: Point,
    ) -> Result<DriverReport, SupplyError> {
        let request = ReportDriver {
            driver,
            car_number,
            position,
        };
        self.rpc
            .call(REPORT_DRIVER, &request)
            .await
            .map_err(|e| SupplyError::Unavailable(e.message))
    }
}
