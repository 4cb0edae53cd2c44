// Key Vault holding the customers' private keys as secrets. Access is by Azure RBAC
// only (no access policies); rbac.bicep grants the app's identity Key Vault Secrets
// Officer. Soft delete (90 days) and purge protection make a deleted key recoverable
// and keep anyone, including a subscription owner, from destroying it early.

@description('Name of the key vault (3-24 letters, digits and hyphens; globally unique).')
@minLength(3)
@maxLength(24)
param name string

@description('Azure region of the key vault.')
param location string

@description('Tags applied to the key vault.')
param tags object = {}

@description('Public network access to the vault data plane. Disabled needs a private endpoint and VNet integration, which this template does not create.')
@allowed([
  'Enabled'
  'Disabled'
])
param publicNetworkAccess string = 'Enabled'

@description('Default action of the vault firewall. Deny blocks the Flex Consumption app unless it reaches the vault through a VNet (not created here).')
@allowed([
  'Allow'
  'Deny'
])
param networkDefaultAction string = 'Allow'

@description('Resource id of the Log Analytics workspace that receives the vault audit log.')
param logAnalyticsWorkspaceId string

resource keyVault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  // checkov:skip=CKV_AZURE_109: The Flex Consumption app has no VNet integration here, so it reaches the vault over the public endpoint from shared, changing outbound IPs; a deny-by-default firewall would cut it off. Access is Entra-authenticated and RBAC-only (only the app identity holds Key Vault Secrets Officer) and audited to Log Analytics. Set keyVaultNetworkDefaultAction=Deny once VNet integration and a private endpoint exist.
  // checkov:skip=CKV_AZURE_189: Same reason as CKV_AZURE_109: without VNet integration and a private endpoint (not created by this template) the app can only reach the vault publicly. keyVaultPublicNetworkAccess=Disabled turns it off for deployments that add them.
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
    enabledForDeployment: false
    enabledForDiskEncryption: false
    enabledForTemplateDeployment: false
    publicNetworkAccess: publicNetworkAccess
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: networkDefaultAction
    }
  }
}

// Every secret read and write lands in Log Analytics (AzureDiagnostics / audit).
resource auditLog 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'audit-to-log-analytics'
  scope: keyVault
  properties: {
    workspaceId: logAnalyticsWorkspaceId
    logs: [
      {
        categoryGroup: 'audit'
        enabled: true
      }
    ]
    metrics: [
      {
        category: 'AllMetrics'
        enabled: true
      }
    ]
  }
}

output name string = keyVault.name
output id string = keyVault.id
output uri string = keyVault.properties.vaultUri
