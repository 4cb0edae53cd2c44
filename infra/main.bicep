// Entry point (azd `azd up`, or `az deployment sub create`): creates the resource group
// and everything the tenant-linking function app needs. See infra/README.md.
targetScope = 'subscription'

// ---- environment ----------------------------------------------------------------

@minLength(1)
@maxLength(64)
@description('Name of the environment (azd: AZURE_ENV_NAME). Seeds the unique suffix of every resource name and the azd-env-name tag.')
param environmentName string

@minLength(1)
@description('Azure region of all resources. It must offer Flex Consumption: az functionapp list-flexconsumption-locations.')
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@description('Object id of the deploying user or service principal (azd: AZURE_PRINCIPAL_ID). When set and grantPrincipalDataAccess is true it gets the app\'s data roles. Empty: none.')
param principalId string = ''

@description('Kind of principal principalId is: User for a person, ServicePrincipal for a CI identity.')
@allowed([
  'User'
  'ServicePrincipal'
])
param principalType string = 'User'

@description('Give principalId the same data roles as the app (blob, queue, table, metrics, Key Vault keys and, under vault-secret custody, secrets) for local debugging. Turn off for production.')
param grantPrincipalDataAccess bool = true

// ---- name overrides (empty: generated) -------------------------------------------

@description('Resource group name. Empty: rg-<environmentName>.')
param resourceGroupName string = ''

@description('Function app name. Empty: func-api-<token>.')
param functionAppName string = ''

@description('Flex Consumption plan name. Empty: plan-<token>.')
param appServicePlanName string = ''

@description('Storage account name. Empty: st<token>.')
param storageAccountName string = ''

@description('Key vault name. Empty: kv-<token>.')
param keyVaultName string = ''

@description('User-assigned managed identity name. Empty: id-api-<token>.')
param identityName string = ''

@description('Log Analytics workspace name. Empty: log-<token>.')
param logAnalyticsName string = ''

@description('Application Insights name. Empty: appi-<token>.')
param applicationInsightsName string = ''

@description('Virtual network name (vnetEnabled only). Empty: vnet-<token>.')
param virtualNetworkName string = ''

// ---- function app ---------------------------------------------------------------

@description('Browser origins allowed by CORS, e.g. ["https://portal.example.com"]. Empty: no cross-origin browser calls.')
param portalOrigins array = []

@description('Memory of each Flex Consumption instance in MB.')
@allowed([
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Upper bound on the number of Flex Consumption instances.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 100

@description('Replication SKU of the storage account (it also holds the linked-account records).')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
  'Standard_RAGRS'
  'Standard_RAGZRS'
])
param storageSkuName string = 'Standard_LRS'

@description('Days the Log Analytics workspace keeps data.')
@minValue(30)
@maxValue(730)
param logAnalyticsRetentionInDays int = 30

// ---- app settings ---------------------------------------------------------------

@description('AUTH_AUDIENCE: audience (aud) of the portal\'s Entra access tokens, e.g. api://<portal-api-app-id> or its client id. Required.')
@minLength(1)
param authAudience string

@description('AUTH_ISSUER: expected token issuer; {tid} stands for the token\'s tenant id.')
param authIssuer string = 'https://login.microsoftonline.com/{tid}/v2.0'

@description('AUTH_JWKS_URI: where the token signing keys are fetched.')
param authJwksUri string = 'https://login.microsoftonline.com/common/discovery/v2.0/keys'

@description('AUTH_OWNER_CLAIM: token claim that owns linked accounts.')
param authOwnerClaim string = 'tid'

@description('HEALTH_CHECK_SCHEDULE: NCRONTAB (six fields, UTC) of the health_check timer.')
param healthCheckSchedule string = '0 */10 * * * *'

@description('HEALTH_CHECK_CONCURRENCY: linked accounts verified at once by the health check.')
@minValue(1)
@maxValue(64)
param healthCheckConcurrency int = 8

@description('CERT_EXPIRY_WARNING_DAYS: days before certificate expiry that the health check warns.')
@minValue(0)
@maxValue(365)
param certExpiryWarningDays int = 30

@description('VERIFY_TIMEOUT_SECONDS: the longest one verification may take, retries included.')
@minValue(5)
@maxValue(600)
param verifyTimeoutSeconds int = 60

@description('UNLINKED_KEY_RETENTION_DAYS: a key no account uses is deleted after this many days.')
@minValue(1)
@maxValue(90)
param unlinkedKeyRetentionDays int = 7

@description('HISTORY_RETENTION_DAYS: account events (history and change feed) are kept this many days.')
@minValue(1)
@maxValue(3650)
param historyRetentionDays int = 90

@description('KEY_RETIREMENT_DAYS: after a certificate renewal the replaced key stays usable this many days, then it is deleted (0: at the next timer run).')
@minValue(0)
@maxValue(90)
param keyRetirementDays int = 7

@description('HEALTH_CHECK_INTERVAL_HOURS: an account is due for re-verification by the timer this many hours after its last verification (0: at every run).')
@minValue(0)
@maxValue(168)
param healthCheckIntervalHours int = 6

@description('HEALTH_CHECK_TIME_BUDGET_SECONDS: the health_check timer stops taking accounts after this; keep it below host.json functionTimeout (10 min).')
@minValue(1)
@maxValue(3600)
param healthCheckTimeBudgetSeconds int = 480

// ---- federated credentials (the app as an OpenID issuer) ------------------------------

@description('OIDC_ISSUER: the OpenID issuer customers\' federated credentials name (https, no trailing slash). Empty: https://<the function app\'s default host name>/api/oidc. Customers\' credentials hold it exactly, so it must never change once the first federated link exists: to serve the issuer under a custom domain or a front door, set it to that name before the first federated link, and keep that name for good.')
param oidcIssuer string = ''

@description('OIDC_KEY_ROTATION_DAYS: the issuer key that signs federated assertions is replaced this often (published 24 hours before it signs, kept 24 hours after).')
@minValue(30)
@maxValue(730)
param oidcKeyRotationDays int = 180

// ---- key custody ------------------------------------------------------------------

@description('KEY_CUSTODY: vault-key (default) creates each private key inside Key Vault as a non-exportable key that signs there (the app gets Key Vault Crypto Officer); vault-secret stores app-generated keys as secrets the app reads (the app also gets Key Vault Secrets Officer).')
@allowed([
  'vault-key'
  'vault-secret'
])
param keyCustody string = 'vault-key'

@description('Keep Key Vault Secrets Officer for the app under keyCustody=vault-key, while keys made under vault-secret are still in use. See infra/README.md.')
param keepSecretsRole bool = false

@description('Key vault tier. premium: keys are HSM-protected (RSA-HSM; KEY_VAULT_HSM=true), billed per key. standard: software-protected keys (KEY_VAULT_HSM=false).')
@allowed([
  'standard'
  'premium'
])
param keyVaultSku string = 'standard'

// ---- network isolation --------------------------------------------------------------

@description('true: deploy a virtual network, integrate the function app with it and put the key vault and the storage account (blob, queue, table) behind private endpoints with their firewalls closed to the internet. The function app\'s HTTPS endpoint stays public.')
param vnetEnabled bool = false

@description('Address space of the virtual network (vnetEnabled only); choose one that does not overlap networks you peer with.')
param vnetAddressPrefix string = '10.0.0.0/16'

@description('Subnet of the four private endpoints, inside vnetAddressPrefix (vnetEnabled only).')
param privateEndpointSubnetPrefix string = '10.0.1.0/24'

@description('Subnet the function app joins, inside vnetAddressPrefix (vnetEnabled only): one address per Flex instance, so at least maximumInstanceCount addresses (a /24 holds 251).')
param appSubnetPrefix string = '10.0.2.0/24'

// ---- alerts (log alert rules on the app's metrics, app/alerts.bicep) ---------------------

@description('Alert when the timer\'s lag (how long the oldest due account a run did not reach has been due) exceeds this many seconds: the period of healthCheckSchedule (600 for the default, every 10 minutes).')
@minValue(60)
param alertTimerLagSeconds int = 600

@description('Alert when more than this percentage of verifications end with report status error within alertErrorShareWindow.')
@minValue(1)
@maxValue(100)
param alertErrorSharePercent int = 10

@description('Verifications alertErrorShareWindow must hold before their error share is judged.')
@minValue(1)
param alertErrorShareMinimumVerifications int = 20

@description('Window (ISO 8601) of the error-share alert.')
@allowed([
  'PT30M'
  'PT1H'
  'PT6H'
  'PT12H'
  'PT24H'
])
param alertErrorShareWindow string = 'PT1H'

@description('Window (ISO 8601) in which a single federated certificate check answered with an issuer-unreachable AADSTS code alerts.')
@allowed([
  'PT5M'
  'PT15M'
  'PT30M'
  'PT1H'
])
param alertIssuerUnreachableWindow string = 'PT15M'

@description('Alert when the 95th percentile of Key Vault sign durations over 15 minutes exceeds this many milliseconds.')
@minValue(1)
param alertKeyVaultSignP95Ms int = 1000

@description('E-mail address the alerts notify (an action group is created for it). Empty: no e-mail.')
param alertEmail string = ''

@description('Resource id of an existing action group the alerts notify as well. Empty: none.')
param alertActionGroupId string = ''

// ---- names ----------------------------------------------------------------------

var abbrs = loadJsonContent('./abbreviations.json')
var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
}
var apiServiceName = 'api'
var accountsTableName = 'linkedaccounts'
var appName = !empty(functionAppName) ? functionAppName : '${abbrs.webSitesFunctions}${apiServiceName}-${resourceToken}'
// vnetEnabled closes both stores to the internet: the app reaches them by private endpoint.
var keyVaultPublicNetworkAccess = vnetEnabled ? 'Disabled' : 'Enabled'
var keyVaultNetworkDefaultAction = vnetEnabled ? 'Deny' : 'Allow'
var storagePublicNetworkAccess = vnetEnabled ? 'Disabled' : 'Enabled'
var storageNetworkDefaultAction = vnetEnabled ? 'Deny' : 'Allow'
var deploymentContainerName = 'app-package-${toLower(take(appName, 32))}-${take(toLower(uniqueString(appName, resourceToken)), 7)}'

resource rg 'Microsoft.Resources/resourceGroups@2022-09-01' = {
  name: !empty(resourceGroupName) ? resourceGroupName : '${abbrs.resourcesResourceGroups}${environmentName}'
  location: location
  tags: tags
}

module identity './app/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: !empty(identityName) ? identityName : '${abbrs.managedIdentityUserAssignedIdentities}${apiServiceName}-${resourceToken}'
    location: location
    tags: tags
  }
}

module monitoring './app/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: !empty(logAnalyticsName) ? logAnalyticsName : '${abbrs.operationalInsightsWorkspaces}${resourceToken}'
    applicationInsightsName: !empty(applicationInsightsName) ? applicationInsightsName : '${abbrs.insightsComponents}${resourceToken}'
    location: location
    tags: tags
    retentionInDays: logAnalyticsRetentionInDays
  }
}

module alerts './app/alerts.bicep' = {
  name: 'alerts'
  scope: rg
  params: {
    namePrefix: '${abbrs.insightsScheduledQueryRules}${resourceToken}'
    location: location
    tags: tags
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    timerLagThresholdSeconds: alertTimerLagSeconds
    errorShareThresholdPercent: alertErrorSharePercent
    errorShareMinimumVerifications: alertErrorShareMinimumVerifications
    errorShareWindow: alertErrorShareWindow
    issuerUnreachableWindow: alertIssuerUnreachableWindow
    keyVaultSignP95ThresholdMs: alertKeyVaultSignP95Ms
    alertEmail: alertEmail
    actionGroupId: alertActionGroupId
  }
}

module storage './app/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: !empty(storageAccountName) ? storageAccountName : '${abbrs.storageStorageAccounts}${resourceToken}'
    location: location
    tags: tags
    skuName: storageSkuName
    deploymentContainerName: deploymentContainerName
    accountsTableName: accountsTableName
    publicNetworkAccess: storagePublicNetworkAccess
    networkDefaultAction: storageNetworkDefaultAction
  }
}

module keyVault './app/key-vault.bicep' = {
  name: 'keyVault'
  scope: rg
  params: {
    name: !empty(keyVaultName) ? keyVaultName : '${abbrs.keyVaultVaults}${resourceToken}'
    location: location
    tags: tags
    skuName: keyVaultSku
    publicNetworkAccess: keyVaultPublicNetworkAccess
    networkDefaultAction: keyVaultNetworkDefaultAction
    logAnalyticsWorkspaceId: monitoring.outputs.logAnalyticsId
  }
}

module network './app/network.bicep' = if (vnetEnabled) {
  name: 'network'
  scope: rg
  params: {
    name: !empty(virtualNetworkName) ? virtualNetworkName : '${abbrs.networkVirtualNetworks}${resourceToken}'
    location: location
    tags: tags
    addressPrefix: vnetAddressPrefix
    privateEndpointSubnetPrefix: privateEndpointSubnetPrefix
    appSubnetPrefix: appSubnetPrefix
    networkSecurityGroupName: '${abbrs.networkNetworkSecurityGroups}${resourceToken}'
    keyVaultName: keyVault.outputs.name
    storageAccountName: storage.outputs.name
  }
}

module rbac './app/rbac.bicep' = {
  name: 'rbac'
  scope: rg
  params: {
    storageAccountName: storage.outputs.name
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    keyVaultName: keyVault.outputs.name
    managedIdentityPrincipalId: identity.outputs.principalId
    userPrincipalId: principalId
    userPrincipalType: principalType
    grantUserPrincipal: grantPrincipalDataAccess
    keyCustody: keyCustody
    keepSecretsRole: keepSecretsRole
  }
}

module functionApp './app/function-app.bicep' = {
  name: 'functionApp'
  scope: rg
  // The host starts as soon as the app exists; let it find its roles in place. With
  // vnetEnabled, appSubnetId also makes it wait for the whole network module (private
  // endpoints and DNS included), since the stores refuse public traffic by then.
  dependsOn: [
    rbac
  ]
  params: {
    name: appName
    planName: !empty(appServicePlanName) ? appServicePlanName : '${abbrs.webServerFarms}${resourceToken}'
    location: location
    tags: tags
    serviceName: apiServiceName
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageAccountName: storage.outputs.name
    deploymentContainerName: storage.outputs.deploymentContainerName
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    keyVaultUri: keyVault.outputs.uri
    accountsTableName: storage.outputs.accountsTableName
    portalOrigins: portalOrigins
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: maximumInstanceCount
    authAudience: authAudience
    authIssuer: authIssuer
    authJwksUri: authJwksUri
    authOwnerClaim: authOwnerClaim
    healthCheckSchedule: healthCheckSchedule
    healthCheckConcurrency: healthCheckConcurrency
    certExpiryWarningDays: certExpiryWarningDays
    keyCustody: keyCustody
    keyVaultHsm: keyVaultSku == 'premium'
    verifyTimeoutSeconds: verifyTimeoutSeconds
    unlinkedKeyRetentionDays: unlinkedKeyRetentionDays
    historyRetentionDays: historyRetentionDays
    keyRetirementDays: keyRetirementDays
    healthCheckIntervalHours: healthCheckIntervalHours
    healthCheckTimeBudgetSeconds: healthCheckTimeBudgetSeconds
    oidcIssuer: oidcIssuer
    oidcKeyRotationDays: oidcKeyRotationDays
    vnetEnabled: vnetEnabled
    appSubnetId: vnetEnabled ? network.outputs.appSubnetId : ''
  }
}

// ---- outputs (azd stores them in .azure/<env>/.env) --------------------------------

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output SERVICE_API_NAME string = functionApp.outputs.name
output AZURE_FUNCTION_NAME string = functionApp.outputs.name
output AZURE_FUNCTION_DEFAULT_HOST_NAME string = functionApp.outputs.defaultHostName
output SERVICE_API_URI string = functionApp.outputs.uri
output API_BASE_URL string = '${functionApp.outputs.uri}/api'
output OIDC_ISSUER string = functionApp.outputs.oidcIssuer
output AZURE_KEY_VAULT_NAME string = keyVault.outputs.name
output AZURE_KEY_VAULT_ENDPOINT string = keyVault.outputs.uri
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output AZURE_FUNCTION_IDENTITY_CLIENT_ID string = identity.outputs.clientId
output APPLICATIONINSIGHTS_NAME string = monitoring.outputs.applicationInsightsName
output AZURE_VIRTUAL_NETWORK_NAME string = vnetEnabled ? network.outputs.name : ''
