// User-assigned managed identity of the function app. The app, the Functions host
// (AzureWebJobsStorage), the Flex deployment package download and the App Insights
// exporter all authenticate as this identity; rbac.bicep grants it its data roles.

@description('Name of the user-assigned managed identity.')
param name string

@description('Azure region of the identity.')
param location string

@description('Tags applied to the identity.')
param tags object = {}

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output id string = identity.id
output name string = identity.name
output clientId string = identity.properties.clientId
output principalId string = identity.properties.principalId
