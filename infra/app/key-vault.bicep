// Key Vault holding the customers' private keys. Access is by Azure RBAC only (no access
// policies); rbac.bicep grants the app's identity Key Vault Crypto Officer (keys created, used
// to sign and deleted inside the vault: KEY_CUSTODY=vault-key) and, only for the vault-secret
// custody, Key Vault Secrets Officer. Soft delete (90 days) and purge protection make a deleted
// key recoverable and keep anyone, including a subscription owner, from destroying it early.

@description('Name of the key vault (3-24 letters, digits and hyphens; globally unique).')
@minLength(3)
@maxLength(24)
param name string

@description('Azure region of the key vault.')
param location string

@description('Tags applied to the key vault.')
param tags object = {}

@description('Pricing tier: premium adds HSM-protected keys (the app then creates RSA-HSM keys: KEY_VAULT_HSM=true).')
@allowed([
  'standard'
  'premium'
])
param skuName string = 'standard'

// main.bicep derives both from vnetEnabled: Disabled + Deny when the app reaches the vault
// through network.bicep's private endpoint, Enabled + Allow otherwise (the Flex instances then
// come from shared, changing outbound IPs and Entra + RBAC guard the vault).
@description('Public network access to the vault data plane: Disabled when only the private endpoint may reach it.')
@allowed([
  'Enabled'
  'Disabled'
])
param publicNetworkAccess string = 'Enabled'

@description('Default action of the vault firewall: Deny when only the private endpoint may reach it.')
@allowed([
  'Allow'
  'Deny'
])
param networkDefaultAction string = 'Allow'

@description('Resource id of the Log Analytics workspace that receives the vault audit log.')
param logAnalyticsWorkspaceId string

resource keyVault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  // checkov:skip=CKV_AZURE_109: The firewall denies by default only with vnetEnabled=true (deploy with it to close this finding): the app then reaches the vault through its VNet integration and the vault's private endpoint. checkov cannot evaluate that condition. With the default vnetEnabled=false the Flex instances come from shared, changing outbound IPs and a deny-by-default firewall would cut them off; access stays Entra-authenticated, RBAC-only (the app identity alone holds a Key Vault data role in production) and audited to Log Analytics.
  // checkov:skip=CKV_AZURE_189: Public network access is Disabled with vnetEnabled=true (deploy with it to close this finding); checkov cannot evaluate the condition. With vnetEnabled=false the app has no private path to the vault, for the same reason as CKV_AZURE_109.
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: skuName
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

// Every key operation (create, sign, delete) and secret access lands in Log Analytics
// (AzureDiagnostics / audit).
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
