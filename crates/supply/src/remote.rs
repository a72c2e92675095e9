//! The supply service across processes: `serve` answers `rpc.supply.report_driver` with a local
//! `SupplyService`; `RemoteSupply` is the gateway's `SupplyApi` that calls it.

use async_trait::async_trait;
use domain::events::{DriverLocated, DriverStatusChanged};
use domain::{AccountId, CarNumber, DriverReport, LatLng, Package, PersonName, Point};
use platform::rpc::{self, RpcClient};
use platform::{ApiError, Shutdown};
use serde::{Deserialize, Serialize};

use crate::{SupplyApi, SupplyError, SupplyService};

pub const REPORT_DRIVER: &str = "rpc.supply.report_driver";
pub const SET_STATUS: &str = "rpc.supply.set_status";
pub const LOCATE: &str = "rpc.supply.locate";
const GROUP: &str = "supply";

#[derive(Serialize, Deserialize)]
struct SetStatus {
    driver: AccountId,
    package: Option<Package>,
}

#[derive(Serialize, Deserialize)]
struct Locate {
    driver: AccountId,
    position: LatLng,
}

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
    let reports = service.clone();
    rpc::serve(
        client.clone(),
        REPORT_DRIVER,
        GROUP,
        shutdown,
        move |call: rpc::Call<ReportDriver>| {
            let service = reports.clone();
            let r = call.request;
            async move {
                service
                    .report_driver(r.driver, r.car_number, r.position)
                    .await
            }
        },
    )
    .await?;
    let statuses = service.clone();
    rpc::serve(
        client.clone(),
        SET_STATUS,
        GROUP,
        shutdown,
        move |call: rpc::Call<SetStatus>| {
            let service = statuses.clone();
            let r = call.request;
            async move { service.set_status(r.driver, r.package).await }
        },
    )
    .await?;
    rpc::serve(
        client,
        LOCATE,
        GROUP,
        shutdown,
        move |call: rpc::Call<Locate>| {
            let service = service.clone();
            let r = call.request;
            async move { service.locate(r.driver, r.position).await }
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
        self.rpc.call(REPORT_DRIVER, &request, None).await
    }

    async fn set_status(
        &self,
        driver: AccountId,
        package: Option<Package>,
    ) -> Result<DriverStatusChanged, SupplyError> {
        self.rpc
            .call(SET_STATUS, &SetStatus { driver, package }, None)
            .await
    }

    async fn locate(
        &self,
        driver: AccountId,
        position: LatLng,
    ) -> Result<DriverLocated, SupplyError> {
        self.rpc
            .call(LOCATE, &Locate { driver, position }, None)
            .await
    }
}
