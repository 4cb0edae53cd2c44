// Role assignments, each by built-in role definition id and scoped to the one resource
// it is about (never the resource group or subscription).
//
// The app's managed identity gets:
//   storage account   Storage Blob Data Owner         host leases/keys + Flex deployment package
//                     Storage Queue Data Contributor  host queues (AzureWebJobsStorage__queueServiceUri)
//                     Storage Table Data Contributor  table `linkedaccounts`
//   App Insights      Monitoring Metrics Publisher    telemetry with local auth disabled
//   Key Vault         Key Vault Crypto Officer        create keys, sign with them, list and
//                                                     delete them (KEY_CUSTODY=vault-key: no
//                                                     private key ever leaves the vault); the
//                                                     OpenID issuer's key is one of them, made,
//                                                     signing, rotated and deleted the same way
//                     Key Vault Secrets Officer       only when keyCustody is vault-secret, or
//                                                     keepSecretsRole keeps it for keys made
//                                                     under vault-secret before a switch
// Crypto Officer is granted under both custodies: keys keep the custody they were made with,
// so vault-key keys made before a switch to vault-secret still need it, and it adds nothing to
// what Secrets Officer (which can read every secret-custody private key) already allows.
// The deploying principal (principalId) optionally gets the same data roles, so a
// developer can run the app locally against the deployed resources.

@description('Name of the storage account.')
param storageAccountName string

@description('Name of the Application Insights component.')
param applicationInsightsName string

@description('Name of the key vault.')
param keyVaultName string

@description('Principal (object) id of the function app\'s user-assigned managed identity.')
param managedIdentityPrincipalId string

@description('Object id of the deploying user or service principal. Empty: no assignment.')
param userPrincipalId string = ''

@description('Kind of principal userPrincipalId is.')
@allowed([
  'User'
  'ServicePrincipal'
])
param userPrincipalType string = 'User'

@description('Give userPrincipalId the same data roles as the app.')
param grantUserPrincipal bool = true

@description('KEY_CUSTODY of the app: vault-key (keys live and sign inside the vault) or vault-secret (private keys stored as secrets and read by the app).')
@allowed([
  'vault-key'
  'vault-secret'
])
param keyCustody string = 'vault-key'

@description('Keep Key Vault Secrets Officer under vault-key, while keys made under vault-secret are still linked or retained.')
param keepSecretsRole bool = false

// Built-in role definition ids (stable across all Azure clouds).
var storageBlobDataOwnerRoleId = 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
var storageQueueDataContributorRoleId = '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
var storageTableDataContributorRoleId = '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
var monitoringMetricsPublisherRoleId = '3913510d-42f4-4e42-8a64-420c390055eb'
var keyVaultCryptoOfficerRoleId = '14b46e9e-c2b7-41b4-b07b-48a6ebf60603'
var keyVaultSecretsOfficerRoleId = 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7'

var assignUser = grantUserPrincipal && !empty(userPrincipalId)
// Secret custody means the app can read private keys; grant that only where it is chosen.
var grantSecretsRole = keyCustody == 'vault-secret' || keepSecretsRole

resource storageAccount 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource keyVault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

// ---- the app's managed identity -------------------------------------------------

resource appBlobDataOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storageAccount.id, managedIdentityPrincipalId, storageBlobDataOwnerRoleId)
  scope: storageAccount
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataOwnerRoleId)
    principalId: managedIdentityPrincipalId
    principalType: 'ServicePrincipal'
    description: 'Function app: host storage and Flex deployment package'
  }
}

resource appQueueDataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storageAccount.id, managedIdentityPrincipalId, storageQueueDataContributorRoleId)
  scope: storageAccount
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageQueueDataContributorRoleId)
    principalId: managedIdentityPrincipalId
    principalType: 'ServicePrincipal'
    description: 'Function app: host queues'
  }
}

resource appTableDataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storageAccount.id, managedIdentityPrincipalId, storageTableDataContributorRoleId)
  scope: storageAccount
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageTableDataContributorRoleId)
    principalId: managedIdentityPrincipalId
    principalType: 'ServicePrincipal'
    description: 'Function app: linked-account records'
  }
}

resource appMetricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(applicationInsights.id, managedIdentityPrincipalId, monitoringMetricsPublisherRoleId)
  scope: applicationInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringMetricsPublisherRoleId)
    principalId: managedIdentityPrincipalId
    principalType: 'ServicePrincipal'
    description: 'Function app: Entra-authenticated telemetry'
  }
}

resource appCryptoOfficer 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(keyVault.id, managedIdentityPrincipalId, keyVaultCryptoOfficerRoleId)
  scope: keyVault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultCryptoOfficerRoleId)
    principalId: managedIdentityPrincipalId
    principalType: 'ServicePrincipal'
    description: 'Function app: customer keys and the OpenID issuer key created, used to sign and deleted inside the vault'
  }
}

resource appSecretsOfficer 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (grantSecretsRole) {
  name: guid(keyVault.id, managedIdentityPrincipalId, keyVaultSecretsOfficerRoleId)
  scope: keyVault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsOfficerRoleId)
    principalId: managedIdentityPrincipalId
    principalType: 'ServicePrincipal'
    description: 'Function app: customer private keys stored as secrets (vault-secret custody)'
  }
}

// ---- the deploying principal (optional, for local debugging) --------------------

resource userBlobDataOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (assignUser) {
  name: guid(storageAccount.id, userPrincipalId, storageBlobDataOwnerRoleId)
  scope: storageAccount
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataOwnerRoleId)
    principalId: userPrincipalId
    principalType: userPrincipalType
    description: 'Deploying principal: local debugging'
  }
}

resource userQueueDataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (assignUser) {
  name: guid(storageAccount.id, userPrincipalId, storageQueueDataContributorRoleId)
  scope: storageAccount
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageQueueDataContributorRoleId)
    principalId: userPrincipalId
    principalType: userPrincipalType
    description: 'Deploying principal: local debugging'
  }
}

resource userTableDataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (assignUser) {
  name: guid(storageAccount.id, userPrincipalId, storageTableDataContributorRoleId)
  scope: storageAccount
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageTableDataContributorRoleId)
    principalId: userPrincipalId
    principalType: userPrincipalType
    description: 'Deploying principal: local debugging'
  }
}

resource userMetricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (assignUser) {
  name: guid(applicationInsights.id, userPrincipalId, monitoringMetricsPublisherRoleId)
  scope: applicationInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringMetricsPublisherRoleId)
    principalId: userPrincipalId
    principalType: userPrincipalType
    description: 'Deploying principal: local debugging'
  }
}

resource userCryptoOfficer 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (assignUser) {
  name: guid(keyVault.id, userPrincipalId, keyVaultCryptoOfficerRoleId)
  scope: keyVault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultCryptoOfficerRoleId)
    principalId: userPrincipalId
    principalType: userPrincipalType
    description: 'Deploying principal: local debugging'
  }
}

resource userSecretsOfficer 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (assignUser && grantSecretsRole) {
  name: guid(keyVault.id, userPrincipalId, keyVaultSecretsOfficerRoleId)
  scope: keyVault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsOfficerRoleId)
    principalId: userPrincipalId
    principalType: userPrincipalType
    description: 'Deploying principal: local debugging'
  }
}
