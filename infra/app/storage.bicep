// Storage account shared by the Functions host (AzureWebJobsStorage: blob leases for
// the timer, host keys), the Flex Consumption deployment package (blob container) and
// the app's own records (table `linkedaccounts`). Shared keys are disabled, so every
// caller authenticates with Entra ID and is authorised by the RBAC roles in rbac.bicep. With
// vnetEnabled the account answers only its private endpoints (network.bicep: blob, queue, table).

@description('Name of the storage account (3-24 lowercase letters and digits).')
@minLength(3)
@maxLength(24)
param name string

@description('Azure region of the storage account.')
param location string

@description('Tags applied to the storage account.')
param tags object = {}

@description('Replication SKU of the storage account.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
  'Standard_RAGRS'
  'Standard_RAGZRS'
])
param skuName string = 'Standard_LRS'

@description('Blob container the Flex Consumption plan deploys the app package from.')
param deploymentContainerName string

@description('Table holding the linked-account records.')
param accountsTableName string

// main.bicep derives both from vnetEnabled: Disabled + Deny when the host and the app reach the
// account through network.bicep's private endpoints, Enabled + Allow otherwise (the Flex
// instances then come from shared, changing outbound IPs and Entra + RBAC guard the account).
@description('Public network access to the account: Disabled when only the private endpoints may reach it.')
@allowed([
  'Enabled'
  'Disabled'
])
param publicNetworkAccess string = 'Enabled'

@description('Default action of the account firewall: Deny when only the private endpoints may reach it.')
@allowed([
  'Allow'
  'Deny'
])
param networkDefaultAction string = 'Allow'

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35: The firewall denies by default only with vnetEnabled=true (deploy with it to close this finding): the Functions host, the Flex deployment and the app then reach blob, queue and table through the VNet integration and the account's private endpoints. checkov cannot evaluate that condition. With the default vnetEnabled=false the Flex instances come from shared, changing outbound IPs, so a deny-by-default firewall would stop the app; shared keys and anonymous blob access are disabled, so only Entra principals holding the RBAC roles in rbac.bicep get in.
  // checkov:skip=CKV_AZURE_59: Public network access is Disabled with vnetEnabled=true (deploy with it to close this finding); checkov cannot evaluate the condition. With vnetEnabled=false the app has no private path to the account, for the same reason as CKV_AZURE_35; every request still needs an Entra token and an RBAC data role.
  // checkov:skip=CKV_AZURE_206: Replication is the storageSkuName parameter. Its default, Standard_LRS, is the one SKU every Flex Consumption region offers (GRS needs a paired region, ZRS availability zones); choose Standard_GZRS/GRS/ZRS for production where the region supports it.
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: skuName
  }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    dnsEndpointType: 'Standard'
    isHnsEnabled: false
    isLocalUserEnabled: false
    isSftpEnabled: false
    minimumTlsVersion: 'TLS1_2'
    publicNetworkAccess: publicNetworkAccess
    supportsHttpsTrafficOnly: true
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: networkDefaultAction
    }
    encryption: {
      keySource: 'Microsoft.Storage'
      requireInfrastructureEncryption: true
      services: {
        blob: {
          enabled: true
          keyType: 'Account'
        }
        file: {
          enabled: true
          keyType: 'Account'
        }
        queue: {
          enabled: true
          keyType: 'Account'
        }
        table: {
          enabled: true
          keyType: 'Account'
        }
      }
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource accountsTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = {
  parent: tableService
  name: accountsTableName
}

output name string = storage.name
output id string = storage.id
output blobEndpoint string = storage.properties.primaryEndpoints.blob
output queueEndpoint string = storage.properties.primaryEndpoints.queue
output tableEndpoint string = storage.properties.primaryEndpoints.table
output deploymentContainerName string = deploymentContainer.name
output accountsTableName string = accountsTable.name
