// Log alert rules on the app's own OpenTelemetry metrics (names: shared/support/telemetry.py).
//
// The Azure Monitor exporter writes each metric to the component's `customMetrics` table under
// its instrument name (dots kept), its attributes in `customDimensions` (keys kept), one row per
// export interval: counters as the interval's delta (valueSum), histograms as valueSum,
// valueCount, valueMin and valueMax (no buckets), gauges as the last value set (valueSum with
// valueCount 1). Each query below returns one numeric column over the rule's window; the rule
// compares it with its threshold (criteria), so the numbers an operator tunes are parameters.

@description('Prefix of the rules\' names, e.g. alert-<token>.')
param namePrefix string

@description('Azure region of the rules.')
param location string

@description('Tags applied to the rules and the action group.')
param tags object = {}

@description('Name of the Application Insights component whose customMetrics the rules query.')
param applicationInsightsName string

@description('Seconds the timer\'s lag (m365link.timer.lag: how long the oldest due account a run did not reach has been due) may reach before it alerts: the period of the health_check timer.')
@minValue(60)
param timerLagThresholdSeconds int = 600

@description('Percent of verifications ending with report status error, within errorShareWindow, above which it alerts.')
@minValue(1)
@maxValue(100)
param errorShareThresholdPercent int = 10

@description('Verifications errorShareWindow must hold before a share is judged (one error in two verifications is no trend).')
@minValue(1)
param errorShareMinimumVerifications int = 20

@description('Window (ISO 8601) over which the share of error verifications is computed.')
@allowed([
  'PT30M'
  'PT1H'
  'PT6H'
  'PT12H'
  'PT24H'
])
param errorShareWindow string = 'PT1H'

@description('Window (ISO 8601) in which one federated certificate check answered by Entra with an issuer-unreachable code alerts.')
@allowed([
  'PT5M'
  'PT15M'
  'PT30M'
  'PT1H'
])
param issuerUnreachableWindow string = 'PT15M'

@description('Milliseconds the 95th percentile of Key Vault sign durations may reach within 15 minutes before it alerts.')
@minValue(1)
param keyVaultSignP95ThresholdMs int = 1000

@description('E-mail address the alerts are sent to, through an action group made here. Empty: none.')
param alertEmail string = ''

@description('Resource id of an existing action group the alerts also notify. Empty: none.')
param actionGroupId string = ''

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource emailActionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = if (!empty(alertEmail)) {
  name: '${namePrefix}-email'
  location: 'Global'
  tags: tags
  properties: {
    groupShortName: 'm365link'
    enabled: true
    emailReceivers: [
      {
        name: 'operator'
        emailAddress: alertEmail
        useCommonAlertSchema: true
      }
    ]
  }
}

var emailActionGroups = empty(alertEmail) ? [] : [emailActionGroup.id]
var actionGroups = empty(actionGroupId) ? emailActionGroups : concat(emailActionGroups, [actionGroupId])

// (1) The timer falls behind: some run in the last 30 minutes left a due account unreached that
// had been due for longer than one timer period.
var timerLagQuery = '''
customMetrics
| where name == 'm365link.timer.lag'
| summarize lagSeconds = max(valueSum / valueCount)
'''

// (2) Verifications ending `error` (the service could not tell, as opposed to `fail`: the
// customer's setting is wrong): their percentage of all verifications in the window, judged only
// once the window holds the minimum number of verifications.
var errorShareQuery = format(
  '''
customMetrics
| where name == 'm365link.verifications'
| extend status = tostring(customDimensions['m365link.report.status'])
| summarize verifications = sum(valueSum), errors = sumif(valueSum, status == 'error')
| where verifications >= {0}
| project errorPercent = 100.0 * errors / verifications
''',
  errorShareMinimumVerifications
)

// (3) Entra could not reach the OpenID issuer (or not find its key) for a federated credential:
// certificate checks that ended `error` with one of the issuer-unreachable AADSTS codes.
var issuerUnreachableQuery = '''
customMetrics
| where name == 'm365link.verification.checks'
| where tostring(customDimensions['m365link.check.id']) == 'certificate'
| where tostring(customDimensions['m365link.check.status']) == 'error'
| where tostring(customDimensions['m365link.check.code']) in ('AADSTS50166', 'AADSTS90061', 'AADSTS501661', 'AADSTS7000272')
| summarize issuerUnreachable = sum(valueSum)
'''

// (4) Key Vault signs slowly. customMetrics holds no histogram buckets, so this is the 95th
// percentile of the export intervals' mean sign durations, each weighted by its number of signs.
var keyVaultSignQuery = '''
customMetrics
| where name == 'm365link.keyvault.sign.duration'
| where valueCount > 0
| summarize p95Milliseconds = percentilew(valueSum / valueCount, valueCount, 95)
'''

resource timerLagAlert 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${namePrefix}-timer-lag'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'm365link: health_check timer lags behind its due accounts'
    description: 'An account a run did not reach had been due longer than one timer period (m365link.timer.lag above ${timerLagThresholdSeconds} s at the end of a run): the timer does not keep up with the fleet.'
    severity: 2
    enabled: true
    scopes: [
      applicationInsights.id
    ]
    evaluationFrequency: 'PT10M'
    windowSize: 'PT30M'
    criteria: {
      allOf: [
        {
          query: timerLagQuery
          timeAggregation: 'Maximum'
          metricMeasureColumn: 'lagSeconds'
          operator: 'GreaterThan'
          threshold: timerLagThresholdSeconds
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: actionGroups
    }
  }
}

resource verificationErrorsAlert 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${namePrefix}-verification-errors'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'm365link: share of verifications ending error'
    description: 'More than ${errorShareThresholdPercent}% of verifications ended with report status error over ${errorShareWindow} (m365link.verifications).'
    severity: 2
    enabled: true
    scopes: [
      applicationInsights.id
    ]
    evaluationFrequency: 'PT15M'
    windowSize: errorShareWindow
    criteria: {
      allOf: [
        {
          query: errorShareQuery
          timeAggregation: 'Maximum'
          metricMeasureColumn: 'errorPercent'
          operator: 'GreaterThan'
          threshold: errorShareThresholdPercent
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: actionGroups
    }
  }
}

resource issuerUnreachableAlert 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${namePrefix}-issuer-unreachable'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'm365link: Entra cannot reach the OpenID issuer'
    description: 'Certificate checks of federated links ended error with AADSTS50166, 90061, 501661 or 7000272 within ${issuerUnreachableWindow} (m365link.verification.checks): Entra could not fetch the issuer\'s documents or key.'
    severity: 1
    enabled: true
    scopes: [
      applicationInsights.id
    ]
    evaluationFrequency: 'PT5M'
    windowSize: issuerUnreachableWindow
    criteria: {
      allOf: [
        {
          query: issuerUnreachableQuery
          timeAggregation: 'Maximum'
          metricMeasureColumn: 'issuerUnreachable'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: actionGroups
    }
  }
}

resource keyVaultSignAlert 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${namePrefix}-keyvault-sign-latency'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'm365link: Key Vault sign latency'
    description: 'The 95th percentile of Key Vault sign durations over 15 minutes is above ${keyVaultSignP95ThresholdMs} ms (m365link.keyvault.sign.duration).'
    severity: 3
    enabled: true
    scopes: [
      applicationInsights.id
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          query: keyVaultSignQuery
          timeAggregation: 'Maximum'
          metricMeasureColumn: 'p95Milliseconds'
          operator: 'GreaterThan'
          threshold: keyVaultSignP95ThresholdMs
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: actionGroups
    }
  }
}

output alertRuleIds array = [
  timerLagAlert.id
  verificationErrorsAlert.id
  issuerUnreachableAlert.id
  keyVaultSignAlert.id
]
