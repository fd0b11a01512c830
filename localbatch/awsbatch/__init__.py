"""localbatch in AWS Batch's words: the service model, job definitions and jobs as AWS writes them.

``model`` holds botocore's Batch service model and validates bodies against it;
``jobdefinition`` converts job definitions to and from RegisterJobDefinition requests;
``jobdetail`` writes jobs as DescribeJobs/ListJobs show them. Export to CloudFormation and
Terraform, import and deploy build on these.
"""
