// Flex Consumption plan + Linux function app (Python 3.13, v1 programming model).
//
// Flex Consumption takes the language and version from functionAppConfig.runtime and
// the package from functionAppConfig.deployment, so the FUNCTIONS_WORKER_RUNTIME,
// FUNCTIONS_EXTENSION_VERSION, WEBSITE_RUN_FROM_PACKAGE and WEBSITE_CONTENT* app
// settings of the other plans are deliberately absent (they are deprecated on Flex).

@description('Name of the function app (globally unique host name).')
param name string

@description('Name of the Flex Consumption plan.')
param planName string

@description('Azure region of the plan and the app.')
param location string

@description('Tags applied to the plan and the app (the app adds azd-service-name).')
param tags object = {}

@description('azd service name from azure.yaml; azd finds the app by this tag.')
param serviceName string = 'api'

@description('Resource id of the user-assigned managed identity the app runs as.')
param identityId string

@description('Client id of that identity (AZURE_CLIENT_ID for DefaultAzureCredential).')
param identityClientId string

@description('Name of the storage account (host storage, deployment package, accounts table).')
param storageAccountName string

@description('Blob container the Flex plan deploys the package from.')
param deploymentContainerName string

@description('Name of the Application Insights component.')
param applicationInsightsName string

@description('Vault URI of the key vault that stores the private keys.')
param keyVaultUri string

@description('Table holding the linked-account records.')
param accountsTableName string

@description('Origins (scheme://host[:port]) allowed to call the API from a browser.')
param portalOrigins array

@description('Memory of each instance in MB.')
@allowed([
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('HTTP requests one instance is sent at once; the Python worker runs as many at once (PYTHON_THREADPOOL_THREAD_COUNT).')
@minValue(1)
@maxValue(64)
param httpPerInstanceConcurrency int = 16

@description('Upper bound on the number of instances the app scales out to.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 100

@description('Expected audience (aud) of the portal\'s bearer tokens.')
param authAudience string

@description('Expected issuer of the bearer tokens; {tid} stands for the token\'s tenant id.')
param authIssuer string

@description('JWKS URI the token signing keys are fetched from.')
param authJwksUri string

@description('Token claim that identifies the owner of linked accounts.')
param authOwnerClaim string

@description('NCRONTAB schedule of the health_check timer.')
param healthCheckSchedule string

@description('Linked accounts the health check verifies at once.')
param healthCheckConcurrency int

@description('Days before certificate expiry that the health check starts warning.')
param certExpiryWarningDays int

@description('KEY_CUSTODY: vault-key (keys created and used to sign inside Key Vault) or vault-secret.')
@allowed([
  'vault-key'
  'vault-secret'
])
param keyCustody string = 'vault-key'

@description('KEY_VAULT_HSM: vault-key keys are RSA-HSM (needs a Premium vault).')
param keyVaultHsm bool = false

@description('VERIFY_TIMEOUT_SECONDS: the longest one verification may take, retries included.')
param verifyTimeoutSeconds int

@description('UNLINKED_KEY_RETENTION_DAYS: a key no account uses is deleted after this.')
param unlinkedKeyRetentionDays int

@description('HISTORY_RETENTION_DAYS: account events are kept this many days.')
param historyRetentionDays int

@description('KEY_RETIREMENT_DAYS: a key replaced by a renewal is deleted this many days after the switch.')
param keyRetirementDays int

@description('HEALTH_CHECK_INTERVAL_HOURS: an account is due for re-verification this many hours after its last one.')
param healthCheckIntervalHours int

@description('HEALTH_CHECK_TIME_BUDGET_SECONDS: the health_check timer stops taking accounts after this.')
param healthCheckTimeBudgetSeconds int

@description('true: integrate the app with the VNet of network.bicep (all its outbound traffic goes through appSubnetId).')
param vnetEnabled bool = false

@description('Resource id of the subnet delegated to Microsoft.App/environments; used when vnetEnabled.')
param appSubnetId string = ''

resource storageAccount 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225: Zone redundancy is an opt-in that needs a region with availability zones and zone-redundant storage; the app keeps no state on its instances (keys in Key Vault, records in Table Storage), so a zonal outage costs retries, not data. Add zoneRedundant: true together with storageSkuName Standard_ZRS/GZRS where the region offers both.
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_222: Public HTTP API by design: the portal frontend calls it from customers' browsers (CORS limited to portalOrigins) and the app authenticates every request itself with Entra bearer tokens (AUTH_MODE=entra). Closing public access needs a private front door this template does not create.
  // checkov:skip=CKV_AZURE_17: Callers are portal users' browsers presenting Entra bearer tokens; they hold no client certificates, and requiring mutual TLS would break both them and the CORS preflight.
  // checkov:skip=CKV_AZURE_212: siteConfig.numberOfWorkers does not apply to Flex Consumption, which scales per functionAppConfig.scaleAndConcurrency from zero up to maximumInstanceCount and replaces failed instances itself.
  // checkov:skip=CKV_AZURE_213: The App Service health-check path (instance eviction) is not part of the Flex Consumption configuration used here; liveness is observed through GET /api/health, the health_check timer and Application Insights.
  name: name
  location: location
  tags: union(tags, { 'azd-service-name': serviceName })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    publicNetworkAccess: 'Enabled'
    // Flex Consumption VNet integration: outbound calls (Key Vault, storage, Entra, Graph) leave
    // through the delegated subnet, which reaches the vault and storage by private endpoint.
    virtualNetworkSubnetId: vnetEnabled ? appSubnetId : null
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      cors: {
        allowedOrigins: portalOrigins
        supportCredentials: false
      }
      appSettings: [
        // Functions host storage, identity-based (the account has shared keys disabled).
        {
          name: 'AzureWebJobsStorage__credential'
          value: 'managedidentity'
        }
        {
          name: 'AzureWebJobsStorage__clientId'
          value: identityClientId
        }
        {
          name: 'AzureWebJobsStorage__blobServiceUri'
          value: storageAccount.properties.primaryEndpoints.blob
        }
        {
          name: 'AzureWebJobsStorage__queueServiceUri'
          value: storageAccount.properties.primaryEndpoints.queue
        }
        {
          name: 'AzureWebJobsStorage__tableServiceUri'
          value: storageAccount.properties.primaryEndpoints.table
        }
        // Telemetry, Entra-authenticated (the component has local auth disabled).
        {
          name: 'APPLICATIONINSIGHTS_CONNECTION_STRING'
          value: applicationInsights.properties.ConnectionString
        }
        {
          name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING'
          value: 'ClientId=${identityClientId};Authorization=AAD'
        }
        // The app's own settings (read once by shared/'s settings module).
        {
          name: 'AZURE_CLIENT_ID'
          value: identityClientId
        }
        {
          name: 'KEY_VAULT_URL'
          value: keyVaultUri
        }
        {
          name: 'ACCOUNTS_STORAGE__tableServiceUri'
          value: storageAccount.properties.primaryEndpoints.table
        }
        {
          name: 'ACCOUNTS_STORAGE__credential'
          value: 'managedidentity'
        }
        {
          name: 'ACCOUNTS_STORAGE__clientId'
          value: identityClientId
        }
        {
          name: 'ACCOUNTS_TABLE_NAME'
          value: accountsTableName
        }
        {
          name: 'AUTH_MODE'
          value: 'entra'
        }
        {
          name: 'AUTH_AUDIENCE'
          value: authAudience
        }
        {
          name: 'AUTH_ISSUER'
          value: authIssuer
        }
        {
          name: 'AUTH_JWKS_URI'
          value: authJwksUri
        }
        {
          name: 'AUTH_OWNER_CLAIM'
          value: authOwnerClaim
        }
        {
          name: 'HEALTH_CHECK_SCHEDULE'
          value: healthCheckSchedule
        }
        {
          name: 'HEALTH_CHECK_CONCURRENCY'
          value: string(healthCheckConcurrency)
        }
        {
          name: 'CERT_EXPIRY_WARNING_DAYS'
          value: string(certExpiryWarningDays)
        }
        // Key custody (see infra/README.md): which roles rbac.bicep grants follows the same
        // keyCustody parameter; HSM keys follow the vault's SKU.
        {
          name: 'KEY_CUSTODY'
          value: keyCustody
        }
        {
          name: 'KEY_VAULT_HSM'
          value: keyVaultHsm ? 'true' : 'false'
        }
        {
          name: 'VERIFY_TIMEOUT_SECONDS'
          value: string(verifyTimeoutSeconds)
        }
        {
          name: 'UNLINKED_KEY_RETENTION_DAYS'
          value: string(unlinkedKeyRetentionDays)
        }
        {
          name: 'HISTORY_RETENTION_DAYS'
          value: string(historyRetentionDays)
        }
        {
          name: 'KEY_RETIREMENT_DAYS'
          value: string(keyRetirementDays)
        }
        {
          name: 'HEALTH_CHECK_INTERVAL_HOURS'
          value: string(healthCheckIntervalHours)
        }
        {
          name: 'HEALTH_CHECK_TIME_BUDGET_SECONDS'
          value: string(healthCheckTimeBudgetSeconds)
        }
        // Request bodies: the app refuses any over 64 KiB (shared/http_edge.py MAX_BODY_BYTES)
        // with a 413 problem. The host's own limit (default 100 MB, buffered before the worker
        // sees it) is set to twice that: bodies just over 64 KiB still get the app's problem
        // details, anything bigger is cut off by the host before it costs the worker memory.
        {
          name: 'FUNCTIONS_REQUEST_BODY_SIZE_LIMIT'
          value: '131072'
        }
        // The Python worker runs each request on a thread of its pool, by default min(32, CPUs
        // + 4): a few threads on a Flex instance. A verification mostly waits on Entra, Graph
        // and Key Vault, so the pool gets one thread per request the instance is sent
        // (scaleAndConcurrency below): none waits in the worker for a thread meanwhile.
        {
          name: 'PYTHON_THREADPOOL_THREAD_COUNT'
          value: string(httpPerInstanceConcurrency)
        }
      ]
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storageAccount.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
        triggers: {
          http: {
            perInstanceConcurrency: httpPerInstanceConcurrency
          }
        }
      }
      runtime: {
        name: 'python'
        version: '3.13'
      }
    }
  }
}

// No FTP and no Kudu/SCM basic-auth publishing credentials: deployments (azd, Core
// Tools) authenticate with Entra ID.
resource ftpPublishingPolicy 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmPublishingPolicy 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'scm'
  properties: {
    allow: false
  }
}

output name string = functionApp.name
output defaultHostName string = functionApp.properties.defaultHostName
output uri string = 'https://${functionApp.properties.defaultHostName}'
